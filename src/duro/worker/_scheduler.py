"""The scheduler: fires due schedule ticks from a worker's main loop.

Every worker runs one. Each loop iteration calls :meth:`Scheduler.run_due` with the
durable time; it looks at the store at most every ``poll_interval`` (real seconds) or
when a known tick comes due, and fires what is due. Firing is the store's
compare-and-set transaction (see :mod:`duro.store._schedules`), so any number of
workers, in any number of processes, start exactly one run per tick.

After downtime the ticks missed by at most the schedule's catch-up window still fire
(each once, oldest first); older ones are skipped and counted in ``missed``. A clock
that jumps (``ManualClock.advance``) is time passing, not downtime: the window is
counted from this scheduler's last look, so that the ticks jumped over while it ran
all fire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from duro._clock import Clock, SystemClock
from duro.interceptors._worker import ScheduleFiredInput, WorkerInterceptor
from duro.schedules._declare import ScheduleDeclaration, declared_schedules, spec_of
from duro.store._schedules import ScheduleRecord, ScheduleStore

__all__ = ["Scheduler"]

log = logging.getLogger("duro.scheduler")


class Scheduler:
    """Fires the due ticks of the schedules in a store.

    Args:
        store: The store (schedules need a store with schedule operations; on others
            the scheduler does nothing).
        clock: Durable time (``ManualClock`` in tests).
        workflows: The workflow names this worker serves: only their declared schedules
            are created/updated by :meth:`start` (None: all declared). Ticks of every
            schedule are fired whatever the names: the runs go to the store, and a
            worker that has the workflow executes them.
        poll_interval: Real seconds between looks at the store when nothing is known
            to be due (schedules created by other processes, buffered ticks).
        batch: Ticks fired per transaction (a long catch-up continues at once).
        on_started: Called after runs were created (e.g. the worker's ``wake``).
        declarations: The declarations :meth:`start` upserts (default: every
            ``duro.schedule(...)`` made so far).
    """

    def __init__(
        self,
        store: object,
        *,
        clock: Clock | None = None,
        workflows: Iterable[str] | None = None,
        poll_interval: float = 0.2,
        batch: int = 100,
        on_started: Callable[[], None] | None = None,
        declarations: Mapping[str, ScheduleDeclaration] | None = None,
        observers: Sequence[WorkerInterceptor] = (),
    ) -> None:
        self.store: ScheduleStore | None = store if isinstance(store, ScheduleStore) else None
        self.clock = clock or SystemClock()
        self.workflows = set(workflows) if workflows is not None else None
        self.poll_interval = poll_interval
        self.batch = max(1, batch)
        self.on_started = on_started
        self.observers = tuple(
            o for o in observers
            if type(o).schedule_fired is not WorkerInterceptor.schedule_fired)
        """The interceptors told of each firing (``schedule_fired``)."""
        self._declarations = declarations
        self._next_due: float | None = None
        self._last_poll = float("-inf")
        self._dirty = True
        self._broken: set[str] = set()  # schedules already warned about
        self._looked_at: float | None = None
        """The durable time of the last look at the store (a jumping clock only)."""
        self.runs_started = 0
        """Runs this scheduler created (for tests and metrics)."""

    def notify(self) -> None:
        """Look at the store at the next :meth:`run_due` (a schedule changed here)."""
        self._dirty = True

    async def start(self) -> None:
        """Create or update the schedules declared in code for this worker's workflows.

        An existing schedule keeps its paused state; its definition follows the code.
        """
        declarations = (self._declarations if self._declarations is not None
                        else declared_schedules())
        if self.store is None:
            if declarations:
                log.warning("this store has no schedules: the %d schedule(s) declared in "
                            "code are not created", len(declarations))
            return
        for decl in declarations.values():
            if self.workflows is not None and decl.workflow_name not in self.workflows:
                continue
            now = self.clock.now()
            _, change = await self.store.upsert_schedule(
                decl.definition, paused=decl.paused, next_fire_at=decl.spec.next_after(now),
                now=now)
            if change != "unchanged":
                log.info("schedule %r %s from code (%s)", decl.schedule_id, change,
                         decl.spec.describe())
        self._dirty = True

    async def run_due(self, now: float) -> float | None:
        """Fire what is due at ``now`` (durable time); return the next due time, if any.

        Cheap when nothing is due: no store access between polls unless ``now`` reached
        the next known tick. Never raises (failures are logged and retried next poll),
        except for cancellation.
        """
        if self.store is None:
            return None
        mono = time.monotonic()
        if (not self._dirty and mono - self._last_poll < self.poll_interval
                and (self._next_due is None or now < self._next_due)):
            return self._next_due
        self._last_poll = mono
        self._dirty = False
        again = False
        try:
            due = await self.store.due_schedules(now, self.batch)
            for record in due:
                again |= await self._fire(record, now)
            self._next_due = await self.store.next_schedule_due()
            if self.clock.jumps and not again:
                self._looked_at = now
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("scheduler: %s: %s", type(exc).__name__, exc)
            self._next_due = now + self.poll_interval
            return self._next_due
        if again:
            self._dirty = True
            return now
        if self._next_due is not None and self._next_due <= now:
            # Due but not fired (e.g. a tick it could not compute): retry next poll.
            return now + self.poll_interval
        return self._next_due

    def _observe(self, fired: ScheduleFiredInput) -> None:
        for observer in self.observers:
            try:
                observer.schedule_fired(fired)
            except Exception:  # an observer's bug must not stop the schedules
                log.exception("interceptor %r failed in schedule_fired", observer)

    async def _fire(self, s: ScheduleRecord, now: float) -> bool:
        """Fire one schedule's due ticks; True if more may be due at once."""
        assert self.store is not None
        ticks: list[float] = []
        missed = 0
        nxt = s.next_fire_at
        if nxt is not None and nxt <= now:
            try:
                spec = spec_of(s)
            except ValueError as exc:  # e.g. a time zone this host does not know
                if s.schedule_id not in self._broken:
                    self._broken.add(s.schedule_id)
                    log.warning("schedule %r cannot fire here: %s", s.schedule_id, exc)
                return False
            # What a jump of the clock passed over while this scheduler was looking is
            # time passing: the window counts from that last look.
            looked = now if self._looked_at is None else min(now, self._looked_at)
            horizon = looked - s.catch_up
            if nxt < horizon:
                missed, nxt = spec.skip_before(nxt, horizon)
            while nxt is not None and nxt <= now and len(ticks) < self.batch:
                ticks.append(nxt)
                nxt = spec.next_after(nxt)
        result = await self.store.fire_schedule(
            s.schedule_id, expected_next=s.next_fire_at, next_fire_at=nxt, ticks=ticks,
            missed=missed, now=now)
        if result is None:
            return True  # someone else moved it: look again
        if missed:
            log.warning("schedule %r: skipped %d tick(s) older than its catch-up window "
                        "(%gs)", s.schedule_id, missed, s.catch_up)
        if self.observers and (ticks or missed):
            self._observe(ScheduleFiredInput(
                schedule_id=s.schedule_id, workflow=s.workflow_name, ticks=tuple(ticks),
                fired_at=now, started=tuple(r.workflow_id for r in result.started),
                missed=missed))
        if result.started:
            self.runs_started += len(result.started)
            log.info("schedule %r started %s", s.schedule_id,
                     ", ".join(r.workflow_id for r in result.started))
            if self.on_started is not None:
                self.on_started()
        return nxt is not None and nxt <= now
