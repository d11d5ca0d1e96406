"""A run this worker holds in memory: its instance, the worker's bookkeeping, its writes.

:class:`HeldRun` is the worker's side of one run. It holds the deterministic
:class:`~duro.workflow._instance.RunInstance` (events in, commands out) and is that
instance's host: the steps, timers, children and events the workflow issues arrive
here. Around it, the bookkeeping only a worker needs: the fencing epoch and history
length the run's next write must continue, the outbox of events waiting for that
write, writes and step attempts in flight, the write turn, whether the run is ending,
who reads its inbox. Every write of the run's history takes its events and sequence
numbers from :meth:`HeldRun.take` (the outbox first), whether a plain append
(:meth:`HeldRun.append`), a child's start (:meth:`HeldRun.start_child`) or the run's
continuation as new (``_decide.continue_as_new``).

:class:`HeldRuns` is the table of held runs (active: owned and executing; cached:
suspended, kept for a quick resume) and of the room left for more.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import math
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from duro._history import EventKind
from duro._ids import new_id
from duro._messages import MessageKind
from duro.errors import DataRejectedError, DuroError, RunNotFoundError, StoreError
from duro.interceptors._worker import WorkerInterceptor, events_recorded_input
from duro.store import Claim, Fenced, NewEvent, RunLinks
from duro.store._records import Placement
from duro.worker import _decide as decide
from duro.worker import _external as external
from duro.worker import _local_steps as steps
from duro.workflow._commands import ExternalCommand
from duro.workflow._instance import ChildCommand, RunInstance, StepCommand, TimerCommand

if TYPE_CHECKING:
    from duro.worker._worker import Worker
    from duro.workflow._api import Workflow

__all__ = ["HeldRun", "HeldRuns"]

log = logging.getLogger("duro.worker")

_NO_TURN = contextlib.nullcontext()
_NO_TIMERS: Mapping[int, float] = MappingProxyType({})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
"""What an observer is handed for none (read-only: one for every write)."""


class HeldRun:
    """A run held in memory by a worker: the instance and the worker's bookkeeping.

    The attributes are the worker's to read and set (``worker/_decide.py``,
    ``_local_steps.py``, ``_inbox.py`` keep them); the instance's own state is
    ``inst``'s.
    """

    __slots__ = ("epoch", "finishing", "flush_pending", "history_len", "inbox_again",
                 "inbox_read", "inflight", "inst", "outbox", "queue", "reading_inbox",
                 "run_id", "timers_deferred", "turns", "warned_history", "worker",
                 "write_lock", "writing")

    def __init__(self, worker: Worker, workflow: Workflow[Any, Any], *, run_id: str,
                 workflow_id: str, epoch: int, queue: str = "default") -> None:
        self.worker = worker
        self.run_id = run_id
        self.epoch = epoch  # the fencing epoch of the claim (or start) that gave us the run
        self.queue = queue
        self.history_len = 0  # the stored history's length once the writes under way land
        self.outbox: list[NewEvent] = []  # events written with the run's next write
        self.flush_pending = False  # a write of the outbox alone is scheduled
        self.inflight = 0  # step attempts running and events being committed
        self.finishing = False  # its end (or suspension, or parking) is being written
        self.writing = 0  # appends of this run in flight
        self.timers_deferred = False  # due timers wait for them (decide.fire_due_timers)
        self.write_lock = asyncio.Lock()  # a run's writes one at a time, with codecs
        self.turns = 0  # writes holding or awaiting write_lock
        self.reading_inbox = False
        self.inbox_again = False
        self.inbox_read: asyncio.Future[None] | None = None  # set while reading_inbox
        self.warned_history = False
        self.inst = RunInstance(workflow=workflow, run_id=run_id, workflow_id=workflow_id,
                                host=self, interceptors=worker.interceptors,
                                context=worker.context.copy())

    def __repr__(self) -> str:
        return f"<HeldRun {self.run_id} epoch={self.epoch} history_len={self.history_len}>"

    def close(self) -> None:
        """Close the instance (it issues nothing more, and refers to this no more)."""
        self.inst.close()

    # -- the instance's host: its commands, as workflow code issues them --------------------

    def step_issued(self, inst: RunInstance, cmd: StepCommand) -> None:
        steps.start_step(self.worker, self, cmd)

    def step_cancelled(self, inst: RunInstance, cmd: StepCommand) -> None:
        task = cmd.task
        if task is not None and not task.done():
            coro = task.get_coro()
            if isinstance(coro, Coroutine) and \
                    inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                # Cancelled before it ever ran (issued and cancelled in one turn of the
                # workflow): none of run_step runs, nor its accounting (start_step
                # counted the attempt in flight).
                self.given_back()
            task.cancel()
        if cmd.step.queue is not None and not inst.replaying:
            w = self.worker
            w.spawn(w.store.cancel_task(f"{self.run_id}:{cmd.op}:{cmd.attempts + 1}"))

    def timer_started(self, inst: RunInstance, cmd: TimerCommand) -> None:
        if cmd.fire_at < math.inf:  # asyncio.sleep(math.inf) never wakes
            self.worker.wakeups.add(cmd.fire_at, self.run_id)

    def child_issued(self, inst: RunInstance, cmd: ChildCommand) -> None:
        cmd.state = "starting"
        self.inflight += 1
        self.worker.spawn(self.start_child(cmd))

    def child_cancelled(self, inst: RunInstance, cmd: ChildCommand) -> None:
        if cmd.run_id is not None and not cmd.cancel_sent:
            cmd.cancel_sent = True
            self.worker.spawn(self._cancel_child(cmd.workflow_id))

    def external_issued(self, inst: RunInstance, cmd: ExternalCommand) -> None:
        cmd.state = "sending"
        self.inflight += 1
        self.worker.spawn(external.send_external(self.worker, self, cmd))

    def record(self, inst: RunInstance, event: NewEvent) -> None:
        self.outbox.append(event)

    async def write_attempt(self, events: list[NewEvent]) -> bool:
        """:meth:`append` for a step attempt (its outcome, that it waits, a refusal),
        giving the attempt's place in ``inflight`` back however the write ends. The
        attempt's task may be cancelled while it waits on the write (the workflow
        cancelled the step, the run is ending): the write goes on (with codecs, one
        cancelled while its payloads are encoded is not made, and the run's next write is
        refused: the run is loaded again), :meth:`given_back` has the run looked at
        again, and the cancellation goes on. Without this, a run whose step was cancelled
        there never suspended again, and its worker was never idle."""
        try:
            ok = await self.append(events)
        except asyncio.CancelledError:
            self.given_back()
            raise
        self.inflight -= 1
        return ok

    def given_back(self) -> None:
        """A step attempt cancelled before it ran, or while it waited on the store or a
        codec (the workflow cancelled the step, or the run is ending), gives its place in
        ``inflight`` back, and the run is looked at again soon (it may suspend now; the
        workflow's own turn looked while the attempt still counted)."""
        self.inflight -= 1
        decide.after_soon(self.worker, self)

    # -- writes -----------------------------------------------------------------------------

    def take(self, events: list[NewEvent], *, extra: int = 0) -> tuple[int, list[NewEvent]]:
        """The events of the run's next write, the outbox's first, and the sequence
        number of the first of them: the history grows by them (and by ``extra``
        events the store adds itself, a child's start). Call it where the write is
        handed to the store without awaiting in between, or under :meth:`turn`."""
        if self.outbox:
            events = self.outbox + events
            self.outbox = []
        seq = self.history_len
        self.history_len = seq + len(events) + extra
        return seq, events

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The run's write turn with codecs (see :meth:`append`): counted, so a write
        that could skip it knows whether an earlier one holds or awaits it."""
        self.turns += 1
        try:
            async with self.write_lock:
                yield
        finally:
            self.turns -= 1

    def write_turn(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Hold while taking the run's next sequence numbers and writing them: with
        codecs the run's turn (see :meth:`append`); without, nothing (nothing awaits
        before the store has the write)."""
        return self.turn() if self.worker.payloads.active else _NO_TURN

    def append(self, events: list[NewEvent], **kw: Any) -> Coroutine[Any, Any, bool]:
        """Append to the run's history (the outbox first), fenced by its epoch and
        length; keywords go to :meth:`Store.append`. On any failure the run is dropped
        (or parked, when the store refuses the data for good) and False returned.

        With codecs, payloads are encoded first. A write whose payloads encode without
        awaiting (the usual case: small payloads, no offload) goes straight to the
        store, as without codecs. Any other takes the run's turn, and so do the run's
        writes after it until it is written: encoding awaits, and a write overtaking an
        earlier one of the same run would be refused (it must continue the stored
        history). Events the workflow produces while a write's payloads are being
        encoded go with the next write.

        Await it at once: the events and sequence numbers are taken when it is called
        (it returns the coroutine that writes them: one frame less on the hot path).
        """
        if self.worker.payloads.active:
            return self._append_coded(events, **kw)
        seq, events = self.take(events)
        return self._write(seq, events, **kw)

    async def _append_coded(self, events: list[NewEvent], **kw: Any) -> bool:
        try:
            if not self.turns:
                seq, events = self.take(events)
                ready = self.worker.payloads.try_encode_events(events)
                if ready is not None:
                    return await self._write(seq, ready, encoded=True, **kw)
                async with self.turn():  # taken at once: no write holds or awaits it
                    return await self._encode_and_write(seq, events, **kw)
            async with self.turn():
                seq, events = self.take(events)
                return await self._encode_and_write(seq, events, **kw)
        except Exception as exc:  # a codec failed (a blob store down, say)
            log.warning("could not encode the events of run %s: %s; it will be retried",
                        self.run_id, exc)
            self.worker.drop(self)
            return False

    async def _encode_and_write(self, seq: int, events: list[NewEvent], **kw: Any) -> bool:
        self.writing += 1  # due timers wait while this outcome is encoded
        try:
            events = await self.worker.payloads.encode_events(events)
        finally:
            self.writing -= 1
        return await self._write(seq, events, encoded=True, **kw)

    async def _write(self, seq: int, events: list[NewEvent], *, encoded: bool = False,
                     **kw: Any) -> bool:
        """Hand events taken with :meth:`take` to the store (``encoded``: their
        payloads are in stored form already)."""
        w = self.worker
        # Whether an observer is told of this write, asked while the events are fresh
        # in memory (after the commit, ~1,000 other runs' work later, they are not).
        told = bool(w.observers) and self.concerns_observers(events)
        self.writing += 1  # timers wait for what this delivers (decide.fire_due_timers)
        try:
            if encoded and kw.get("result") is not None:  # the run's result: its last
                kw["result"] = events[-1].data            # event's, in stored form
            await w.store.append(self.run_id, self.epoch, seq, events, now=w.clock.now(),
                                 **kw)
        except Fenced:
            # Another worker owns the run, or an earlier write of ours failed and this
            # one did not continue the stored history. Either way the instance is not
            # what the store holds: drop it; the release (fenced: a no-op for a run
            # another worker owns) lets it be loaded again from the store.
            log.info("run %s moved on in the store; dropping it here", self.run_id)
            w.drop(self)
            return False
        except DataRejectedError as exc:
            # The same write can never succeed (a value too large to store, a constraint
            # of the database's own): retrying would run the run's steps again and
            # again for nothing. Parked, it says why and waits for a fix.
            self.park_unwritable(exc)
            return False
        except StoreError as exc:  # a store fault that may pass (store/_protocol.py)
            log.warning("could not write run %s: %s; it will be retried", self.run_id, exc)
            w.drop(self)
            return False
        except Exception as exc:
            # Outside the store's contract: a bug (in the store or in duro), which would
            # fail the same way at every retry, forever. Parked with it instead.
            self.park_unwritable(exc)
            return False
        finally:
            self.writing -= 1
        if told:
            self.observe(events, checked=True)
        if self.history_len > w.history_warning and not self.warned_history:
            self.warned_history = True
            log.warning("run %s of %s has %d history events (warning at %d, limit %d): "
                        "long-lived loops should use duro.continue_as_new()", self.run_id,
                        self.inst.workflow.name, self.history_len, w.history_warning,
                        w.history_limit)
        return True

    def concerns_observers(self, events: Sequence[NewEvent]) -> bool:
        """Whether some observer is about a write of these events: one about every
        write, or one about a kind among them (most writes, a step's outcome, concern
        none under tracing alone)."""
        observed = self.worker.observed_kinds
        if observed is None:
            return True
        for ev in events:  # noqa: SIM110 (a loop: no generator made, on every write)
            if ev.kind in observed:
                return True
        return False

    def observe(self, events: Sequence[NewEvent], *, checked: bool = False) -> None:
        """Tell the worker's observers (``events_recorded``) of a committed write: each
        about every write or about a kind among these events; none when the write
        concerns none (:meth:`concerns_observers`, asked here unless ``checked``: the
        caller asked before the commit)."""
        if not checked and not self.concerns_observers(events):
            return
        w = self.worker
        pairs = w.observer_kinds
        if len(pairs) == 1:  # tracing alone, say: about these events, as was just asked
            told: Sequence[WorkerInterceptor] = (pairs[0][0],)
        else:
            here = {ev.kind for ev in events}
            told = [observer for observer, kinds in pairs
                    if kinds is None or not here.isdisjoint(kinds)]
        inst = self.inst
        due = set_at = _NO_TIMERS  # most writes fire no timer: no maps made for them
        for ev in events:  # a loop: no set of kinds made (most writes fire no timer)
            if ev.kind == EventKind.TIMER_FIRED:
                timers = [cmd for ev in events
                          if ev.kind == EventKind.TIMER_FIRED and ev.op is not None
                          and isinstance(cmd := inst.commands.get(ev.op), TimerCommand)]
                due = {t.op: t.fire_at for t in timers}
                set_at = {t.op: t.set_at for t in timers}
                break
        recorded = events_recorded_input(
            inst.workflow.name, inst.workflow_id, self.run_id, inst.namespace,
            inst.headers or _NO_HEADERS, events, due, set_at, inst.started_at,
            inst.parent_run_id)
        for observer in told:
            try:
                # In the worker's context, not the step's whose outcome this may be.
                w.context.copy().run(observer.events_recorded, recorded)
            except Exception:  # an observer's bug must not cost the run anything
                log.exception("interceptor %r failed in events_recorded", observer)

    def park_unwritable(self, exc: Exception) -> None:
        """Park the run after the store refused its write for good
        (:class:`DataRejectedError`) or failed outside its contract (a bug: see
        ``store/_protocol.py``), once: the run leaves the active runs at once, so a
        second failing write of it parks nothing more. Whatever it was doing (running,
        finishing, suspending) stops."""
        w = self.worker
        if not w.runs.holds(self):
            return  # dropped, or parked already
        if not isinstance(exc, DuroError):
            log.error("run %s: the store raised %s, which is no store fault: a bug",
                      self.run_id, type(exc).__name__, exc_info=exc)
        self.finishing = True
        w.parking.add(self.run_id)
        w.runs.discard(self)
        w.spawn(decide.park(w, self, exc))

    # -- children ---------------------------------------------------------------------------

    async def start_child(self, cmd: ChildCommand) -> None:
        """Record the child's start in this run's history and create the child, in one
        transaction (``child_failed`` instead when its id is taken or it would nest too
        deeply); run the child here when there is room."""
        w = self.worker
        now = w.clock.now()
        run_id = new_id()
        deadline = now + cmd.execution_timeout if cmd.execution_timeout else None
        # A child carries its parent's headers on (a trace, a tenant: the same context).
        links = RunLinks(parent_run_id=self.run_id, parent_op=cmd.op,
                         parent_close=cmd.parent_close, deadline_at=deadline,
                         headers=self.inst.headers)
        with w.local_start(cmd.workflow.name, cmd.workflow.queue) as start:
            try:
                async with self.write_turn():
                    seq, events = self.take([], extra=1)
                    stored = cmd.input
                    if w.payloads.active:
                        events = await w.payloads.encode_events(events)
                        stored = await w.payloads.encode(cmd.input) or cmd.input
                    self.writing += 1
                    try:
                        record, event = await w.store.start_child(
                            self.run_id, self.epoch, seq, events, op=cmd.op, run_id=run_id,
                            workflow_id=cmd.workflow_id, workflow_name=cmd.workflow.name,
                            input=stored, links=links,
                            owner=w.worker_id if start.local else None, now=now,
                            placement=Placement(queue=cmd.workflow.queue),
                            max_depth=w.max_child_depth,
                            search_attributes=cmd.search_attributes)
                    except (Fenced, StoreError):
                        raise
                    except Exception as exc:  # outside the store's contract: see _write
                        self.park_unwritable(exc)
                        return
                    finally:
                        self.writing -= 1
                if record is not None and start.local:
                    start.adopt(Claim(run_id=record.run_id, workflow_id=record.workflow_id,
                                      workflow_name=record.workflow_name,
                                      epoch=record.epoch, history_len=1,
                                      queue=record.queue, namespace=record.namespace),
                                cmd.input, now, links=links)
            except Fenced:
                w.drop(self)
                return
            except Exception as exc:
                log.warning("could not start child %s: %s", cmd.workflow_id, exc)
                w.drop(self)
                return
        self.inflight -= 1
        if w.observers:
            self.observe([*events, event])
        self.inst.apply(event.kind, event.op, event.name, event.data, event.meta, event.ts)
        if cmd.state == "cancelled" and record is not None:
            self.child_cancelled(self.inst, cmd)
        decide.after(w, self)

    async def _cancel_child(self, workflow_id: str) -> None:
        w = self.worker
        try:
            record = await w.store.send_message(workflow_id, MessageKind.CANCEL, None, None,
                                                now=w.clock.now())
        except RunNotFoundError:
            return  # it ended meanwhile
        except DuroError as exc:
            log.warning("could not cancel child %s: %s", workflow_id, exc)
            return
        w.inbox_hint(record.run_id)


class HeldRuns:
    """The runs a worker holds in memory, and the room it has for more.

    ``active`` runs are owned and executing; ``cache`` keeps suspended runs (least
    recently suspended first, at most ``max_cached``) so that a claim at the same
    history length resumes one without a replay. ``reserved`` counts slots promised to
    claims in flight and to runs being created or taken up, so that adopting runs
    meanwhile cannot overshoot ``max_active``; ``activating`` counts the claimed runs
    not yet active, per queue (a queue's per-worker limit counts them).
    """

    def __init__(self, *, max_active: int, max_cached: int) -> None:
        self.max_active = max_active
        self.max_cached = max_cached
        self.active: dict[str, HeldRun] = {}
        self.cache: collections.OrderedDict[str, HeldRun] = collections.OrderedDict()
        self.reserved = 0
        self.activating: dict[str, int] = {}

    # -- held runs --------------------------------------------------------------------------

    def holds(self, held: HeldRun) -> bool:
        """Whether ``held`` is the active run of its id (not dropped, ended, replaced)."""
        return self.active.get(held.run_id) is held

    def hold(self, held: HeldRun) -> None:
        self.active[held.run_id] = held

    def pop(self, run_id: str) -> HeldRun | None:
        """Stop holding the run of this id as active."""
        return self.active.pop(run_id, None)

    def discard(self, held: HeldRun) -> None:
        """Stop holding ``held`` as active, if it still is the run of its id."""
        if self.active.get(held.run_id) is held:
            del self.active[held.run_id]

    def find(self, run_id: str) -> HeldRun | None:
        """The run of this id held here, active or cached."""
        return self.active.get(run_id) or self.cache.get(run_id)

    def forget(self, run_id: str) -> HeldRun | None:
        """Stop holding the run of this id, active or cached."""
        return self.active.pop(run_id, None) or self.cache.pop(run_id, None)

    def suspended(self, held: HeldRun) -> None:
        """Move a run whose suspension was written from active to the cache; close the
        least recently suspended runs past ``max_cached``."""
        self.active.pop(held.run_id, None)
        self.cache[held.run_id] = held
        while len(self.cache) > self.max_cached:
            _, old = self.cache.popitem(last=False)
            old.close()

    def take_cached(self, run_id: str) -> HeldRun | None:
        return self.cache.pop(run_id, None)

    def busy(self) -> bool:
        """Whether work of these runs is in flight: a step attempt, a child's start, a
        message being sent or taken in (``inflight``); an inbox being read and recorded
        (``reading_inbox``: on PostgreSQL the read itself awaits); a write of an active
        run not yet committed (``writing``: its appends, and its last write when it
        completes, fails, suspends, times out or continues as new; not a park's, made
        once the run has left the active runs); or a slot being taken up
        (``reserved``: the main loop's claim, claimed runs loading, local starts, a
        suspect's trial). A worker with any of these is not idle, whatever its event
        loop looks like while it waits on the store."""
        return self.reserved > 0 or any(
            held.inflight or held.writing or held.reading_inbox
            for held in self.active.values())

    def clear(self) -> list[HeldRun]:
        """Stop holding every run; the runs that were held."""
        held = [*self.active.values(), *self.cache.values()]
        self.active.clear()
        self.cache.clear()
        return held

    # -- room -------------------------------------------------------------------------------

    def room(self) -> int:
        """Runs that may still be taken on (negative when over, after adoptions)."""
        return self.max_active - len(self.active) - self.reserved

    def reserve(self, n: int = 1) -> None:
        self.reserved += n

    def unreserve(self, n: int = 1) -> None:
        self.reserved -= n

    def claimed(self, claims: Iterable[Claim]) -> None:
        """Claimed runs hold a slot each, and count against their queue, until
        :meth:`taken_up`."""
        for claim in claims:
            self.reserved += 1
            self.activating[claim.queue] = self.activating.get(claim.queue, 0) + 1

    def taken_up(self, claim: Claim) -> None:
        """A claimed run is active now (or was given up): its slot is its own."""
        self.reserved -= 1
        self.activating[claim.queue] -= 1

    def per_queue(self) -> dict[str, int]:
        """Runs held or being taken up, per queue (for the per-worker queue limits)."""
        local = dict(self.activating)
        for held in self.active.values():
            local[held.queue] = local.get(held.queue, 0) + 1
        return local
