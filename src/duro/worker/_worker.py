"""The worker: claims runs, replays them, runs their steps, fires their timers,
suspends runs that only wait, and takes over runs of dead workers.

Everything happens on one asyncio loop; sync steps run in a thread pool and all
writes go through the store's group-commit writer. Running steps is in
``_local_steps``, and what a run does after each activation (timers, suspension,
finishing) in ``_decide``: functions over this class's state.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from duro._clock import Clock, SystemClock
from duro._history import EventKind, MessageKind, RunStartedMeta
from duro._local import NOT_HELD, Outcome
from duro.errors import (
    DatabaseFileLostError,
    DataRejectedError,
    DuroError,
    PayloadDecodeError,
    RunNotFoundError,
    StoreError,
)
from duro.serde import CodecChain, PayloadConverter
from duro.store import Claim, Fenced, LoadedRun, NewEvent, RunLinks, Store
from duro.store._records import Placement, QueueConfig
from duro.worker import _decide as decide
from duro.worker import _inbox as inbox
from duro.worker import _local_steps as steps
from duro.worker import _recovery as recovery
from duro.worker._gc import collect_young_when_idle, release_gc, tune_gc_for_worker
from duro.worker._options import check_options
from duro.worker._retention import RetentionPolicy, retention_loop
from duro.worker._scheduler import Scheduler
from duro.worker._tasks import TaskRunner
from duro.workflow import _guard
from duro.workflow._api import Workflow
from duro.workflow._instance import (
    ChildCommand,
    RunInstance,
    StepCommand,
    TimerCommand,
)

__all__ = ["Outcome", "Worker"]

"""How a run ended, as recorded: (status, result, error payload)."""

log = logging.getLogger("duro.worker")

# Seconds between probes for workers whose database session ended (a killed process): the
# bound on noticing such a death, whatever the lease; one cheap read per probe.
_LIVENESS_PROBE = 0.5

_NO_TURN = contextlib.nullcontext()


@contextlib.asynccontextmanager
async def _turn(inst: RunInstance) -> AsyncIterator[None]:
    """A run's write turn with codecs (see Worker._append): counted, so a write that
    could skip it knows whether an earlier one holds or awaits it."""
    inst.turns += 1
    try:
        async with inst.write_lock:
            yield
    finally:
        inst.turns -= 1

# A main-loop wait at least this long (seconds), with nothing else to run and nothing due
# for _IDLE_GC_AHEAD seconds, is idle time for a young garbage collection
# (_gc.collect_young_when_idle; ~0.2 s with 10,000 runs held, a few ms without).
_IDLE_GC_WAIT = 0.05
_IDLE_GC_AHEAD = 0.25

# How deeply children nest by default: far more than any tree a workflow walks on
# purpose, and a runaway recursion stops after this many runs instead of thousands a
# second (each level is a run and a transaction).
DEFAULT_MAX_CHILD_DEPTH = 100


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Worker:
    """Executes workflow runs from a store.

    Args:
        store: An open store.
        workflows: The workflows this worker can run, by name.
        clock: Durable time (timers); real time is always used for leases.
        max_active: Runs held and executed at once.
        max_cached: Suspended runs kept in memory for a quick resume.
        max_threads: Threads for sync steps.
        lease: Seconds a worker's lease lasts without renewal; runs of a worker dead for
            this long are taken over; sooner when its death is seen: its PID gone on
            this host (checked every ``lease/2``) or, on PostgreSQL, its database
            session ended (seen within a second).
        poll_interval: Seconds between looks at the store for work from elsewhere.
        workflow_task_timeout: Seconds workflow code may run without awaiting.
        history_warning: Log a warning when a run's history grows past this many events.
        history_limit: Fail a run whose history grows past this many events (use
            continue-as-new for long-lived loops).
        queues: The queues this worker takes runs from (all when None).
        declare: Queue limits to store when the worker starts (declared in code).
        retention: Delete finished runs older than this policy keeps them (one worker
            at a time does it; stores that cannot purge keep everything).
        lookahead: Seconds ahead of their timers at which suspended runs are claimed
            and loaded, so that they wake on time instead of after a claim, a read and
            a replay; a run whose next timer is this close is also kept in memory
            (status ``running``) instead of being suspended. 0 turns both off.
        tune_gc: While the worker runs, make Python's cyclic garbage collector run
            less often (thresholds 50,000/20/10 instead of 700/10/10) if the process
            still has the defaults; the defaults come back when the worker stops.
            Measured: ~40% of a busy worker's time went to collections otherwise.
        codec: The codec chain payloads are stored through (compression, encryption,
            offload; see :mod:`duro.serde`); None: as plain JSON. A client of the same
            store must use a chain that can decode them.
        max_recoveries: How many times in a row a run may be taken over from a worker
            that died holding it, with nothing recorded in between, before it is
            parked (``RecoveryLimitError``) instead of run again: code that kills its
            process (``os._exit``, a crash in a C extension, running out of memory)
            would otherwise take down every worker in turn, forever.
        max_child_depth: How deeply child workflows may nest (a run started from
            outside is at depth 0, its children at 1...). A child past it is not
            started: the parent's ``execute_child`` raises ``ChildWorkflowError``
            (status ``not_started``). Stops runaway recursion; None for no limit.
    """

    def __init__(
        self,
        store: Store,
        workflows: dict[str, Workflow[Any, Any]],
        *,
        clock: Clock | None = None,
        max_active: int = 10_000,
        max_cached: int = 2000,
        max_threads: int = 32,
        lease: float = 5.0,
        poll_interval: float = 0.2,
        workflow_task_timeout: float = 2.0,
        history_warning: int = 10_000,
        history_limit: int = 100_000,
        queues: Sequence[str] | None = None,
        declare: Sequence[QueueConfig] = (),
        retention: RetentionPolicy | None = None,
        lookahead: float = 5.0,
        tune_gc: bool = True,
        codec: CodecChain | None = None,
        max_recoveries: int = 10,
        max_child_depth: int | None = DEFAULT_MAX_CHILD_DEPTH,
    ) -> None:
        check_options({"max_active": max_active, "max_cached": max_cached,
                       "max_threads": max_threads, "lease": lease,
                       "poll_interval": poll_interval,
                       "workflow_task_timeout": workflow_task_timeout,
                       "history_warning": history_warning, "history_limit": history_limit,
                       "queues": queues, "lookahead": lookahead,
                       "max_recoveries": max_recoveries, "max_child_depth": max_child_depth})
        self.max_recoveries = max_recoveries
        self.payloads = PayloadConverter(codec)
        self.max_child_depth = max_child_depth
        self.tune_gc = tune_gc
        self._gc_tuned = False
        self.retention = retention
        self.lookahead = float(lookahead)
        self.draining = False
        self.queues = list(queues) if queues is not None else None
        self.declare = list(declare)
        self.limited_queues: set[str] = set()
        self.history_warning = history_warning
        self.history_limit = history_limit
        self.store = store
        self.workflows = dict(workflows)
        self.names = sorted(self.workflows)
        self.clock = clock or SystemClock()
        self.max_active = max_active
        self.max_cached = max_cached
        self.lease = lease
        self.poll_interval = poll_interval
        self.workflow_task_timeout = workflow_task_timeout
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.host = socket.gethostname()
        self.executor = ThreadPoolExecutor(max_workers=max_threads,
                                           thread_name_prefix="duro-step")
        self.tasks = TaskRunner(self, max_tasks=max_threads)
        self.scheduler = Scheduler(store, clock=self.clock, workflows=self.names,
                                   poll_interval=poll_interval, on_started=self.wake)
        self.active: dict[str, RunInstance] = {}
        self.cache: collections.OrderedDict[str, RunInstance] = collections.OrderedDict()
        self._wakeups: list[tuple[float, int, str]] = []
        self._wakeup_seq = 0
        self._wakeups_kept = 0  # heap size after its last rebuild
        self._waiters: dict[str, list[asyncio.Future[Outcome | None]]] = {}
        self._inbox_hints: set[str] = set()
        self._flushes: collections.deque[tuple[float, RunInstance]] = collections.deque()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._notify = asyncio.Event()
        self._look = True  # the main loop should look at the store on its next turn
        self._tasks: list[asyncio.Task[Any]] = []
        self._activations: set[asyncio.Task[Any]] = set()
        self._stopping = False
        # Slots promised to claims in flight and to claimed runs not yet activated, so
        # that adopting new runs meanwhile cannot overshoot max_active.
        self._reserved = 0
        self._activating: dict[str, int] = {}  # claimed, not yet active, per queue
        self._trial = asyncio.Lock()  # one suspect run on trial at a time
        self._unsubscribe: Callable[[], None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.steps_executed = 0
        self.failure: DuroError | None = None
        """Why the worker stopped on its own (see :meth:`wait_failed`), if it did."""
        self._failed = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Register the lease, re-queue runs parked by other code, and start working."""
        self.loop = asyncio.get_running_loop()
        if self.tune_gc:
            self._gc_tuned = tune_gc_for_worker()
        _guard.install(self.workflow_task_timeout)
        await self.store.register_worker(self.worker_id, self.host, os.getpid(),
                                         real_now=time.time(), lease=self.lease)
        for config in self.declare:
            await self.store.upsert_queue(config, now=self.clock.now())
        await self._refresh_queues()
        await self.scheduler.start()
        for name, wf in self.workflows.items():
            count = await self.store.unpark(name, wf.code_hash, now=self.clock.now())
            if count:
                log.info("retrying %d parked run(s) of %s with new code", count, name)
        loop = self.loop

        def wake_threadsafe() -> None:
            loop.call_soon_threadsafe(self._poke)

        unsub_clock = self.clock.subscribe(wake_threadsafe)
        unsub_store = self.store.subscribe(wake_threadsafe)

        def unsubscribe() -> None:
            unsub_clock()
            unsub_store()

        self._unsubscribe = unsubscribe
        self._tasks = [
            asyncio.create_task(self._main_loop(), name="duro-worker"),
            asyncio.create_task(self._lease_loop(), name="duro-lease"),
        ]
        if self.retention is not None:
            self._tasks.append(asyncio.create_task(
                retention_loop(self.store, self.retention, self.clock), name="duro-retention"))

    async def drain(self, grace: float) -> bool:
        """Graceful shutdown, first half: stop claiming and starting step attempts, and
        let the attempts already running finish for up to ``grace`` seconds.

        A run whose next step would start is suspended instead, due at once, so another
        worker continues it. Returns True when every run was handed back or finished in
        time. Call :meth:`stop` next: it releases what is left and the lease at once.
        """
        self.draining = True
        self._poke()
        for inst in list(self.active.values()):
            decide.after(self, inst)  # runs held for a near timer are suspended now
        started = time.monotonic()
        while self.active and time.monotonic() - started < grace:
            await asyncio.sleep(0.02)
        log.info("drained in %.2fs; %d run(s) still held are released now",
                 time.monotonic() - started, len(self.active))
        return not self.active

    async def stop(self) -> None:
        """Stop claiming, abandon running steps, release every owned run at once."""
        self._stopping = True
        self._poke()
        if self._unsubscribe:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        for inst in list(self.active.values()):
            steps.abandon_steps(self, inst)
        await asyncio.gather(*self._tasks, *self._activations, return_exceptions=True)
        for inst in list(self.active.values()) + list(self.cache.values()):
            inst.close()
        self.active.clear()
        self.cache.clear()
        try:
            await self.store.deregister_worker(self.worker_id, now=self.clock.now())
        except DuroError as exc:
            log.warning("could not release leases at shutdown: %s", exc)
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._gc_tuned:
            self._gc_tuned = False
            release_gc()

    # -- notifications from the engine ----------------------------------------------------

    def wait_for_close(self, run_id: str) -> asyncio.Future[Outcome | None]:
        """A future that resolves when this worker sees the run end (or drops it): with
        the run's (status, result, error) when this worker recorded its end, so the
        waiter need not read it back; None otherwise."""
        assert self.loop is not None
        fut: asyncio.Future[Outcome | None] = self.loop.create_future()
        self._waiters.setdefault(run_id, []).append(fut)
        return fut

    def _wake_waiters(self, run_id: str, outcome: Outcome | None = None) -> None:
        for fut in self._waiters.pop(run_id, []):
            if not fut.done():
                fut.set_result(outcome)

    def instance(self, run_id: str) -> RunInstance | None:
        """The in-memory instance of a run, if this worker holds one (active or cached)."""
        return self.active.get(run_id) or self.cache.get(run_id)

    def answer_query(self, run_id: str, history_len: int, name: str,
                     args: list[Any]) -> Any:
        """The query's answer from the run's instance held here, if it has exactly
        ``history_len`` events (the stored history: an answer from it is current);
        else ``NOT_HELD``."""
        inst = self.instance(run_id)
        if inst is None or inst.history_len != history_len:
            return NOT_HELD
        return inst.query(name, args)

    def schedules_changed(self) -> None:
        """A schedule changed in this process: the scheduler looks again at once."""
        self.scheduler.notify()
        self._poke()

    def wake(self) -> None:
        """Look at the store now (something became ready in this process)."""
        self._poke()

    def inbox_hint(self, run_id: str) -> None:
        """A message for this run was just stored (same process)."""
        self._inbox_hints.add(run_id)
        self._poke()

    def terminated(self, run_id: str) -> None:
        """The run was terminated from this process: drop it now."""
        inst = self.active.pop(run_id, None) or self.cache.pop(run_id, None)
        if inst is not None:
            steps.abandon_steps(self, inst)
            inst.close()
        self._wake_waiters(run_id)

    async def _refresh_queues(self) -> None:
        stats = await self.store.queue_stats(real_now=time.time())
        self.limited_queues = {s.config.name for s in stats
                               if s.config.limited or s.config.per_worker is not None}

    def reserve_slot(self, name: str, queue: str = "default") -> bool:
        """Reserve room for a run the engine is about to create owned by this worker.

        Never for a queue with limits (its runs must go through a claim, which checks
        them) or one this worker does not serve. Pair with :meth:`adopt` (if the run was
        created) or :meth:`unreserve_slot`.
        """
        if (self._stopping or self.draining or name not in self.workflows
                or queue in self.limited_queues
                or (self.queues is not None and queue not in self.queues)
                or len(self.active) + self._reserved >= self.max_active):
            return False
        self._reserved += 1
        return True

    def unreserve_slot(self) -> None:
        self._reserved -= 1

    def adopt(self, claim: Claim, input: bytes, ts: float,
              links: RunLinks | None = None) -> None:
        """Run a run this worker created already owned (no claim round trip)."""
        self._reserved -= 1
        inst = self._new_instance(claim)
        inst.history_len = 1
        self.active[claim.run_id] = inst
        meta = None if links is None else RunStartedMeta(
            parent_run_id=links.parent_run_id, parent_op=links.parent_op,
            deadline_at=links.deadline_at).encode()
        inst.apply(EventKind.RUN_STARTED, None, claim.workflow_name, input, meta, ts)
        self._resume(inst)

    # -- loops --------------------------------------------------------------------------

    async def _main_loop(self) -> None:
        last_takeover = 0.0
        last_liveness = 0.0
        last_inbox_poll = 0.0
        look_at = 0.0  # time.monotonic() of the next look at the store
        while not self._stopping:
            self._notify.clear()
            now = self.clock.now()
            timeout = wake_in = self.poll_interval
            try:
                decide.fire_wakeups(self, now)
                wake_in = self._wakeups[0][0] - now if self._wakeups else timeout
                if self._inbox_hints:
                    hints, self._inbox_hints = self._inbox_hints, set()
                    for run_id in hints:
                        inbox.check(self, run_id)
                mono = time.monotonic()
                if not self._look and mono < look_at:
                    # Woken for a timer of a run held here: the store has nothing new
                    # for us (a burst of timers must not cost store reads per wake-up).
                    await self._wait(min(wake_in, look_at - mono))
                    continue
                self._look = False
                tick = await self.scheduler.run_due(now)
                if tick is not None:
                    timeout = min(timeout, max(0.0, tick - now))
                room = self.max_active - len(self.active) - self._reserved
                if room > 0 and not self.draining:
                    if time.monotonic() - last_liveness >= _LIVENESS_PROBE:
                        # First: a worker found dead now is due now, in this very turn.
                        last_liveness = time.monotonic()
                        await self.store.expire_disconnected_workers()
                    due = await self.store.next_wake_at(self.names)
                    real = time.time()
                    takeover = real - last_takeover >= self.lease / 2
                    if takeover or (due is not None and due <= now + self.lookahead):
                        if takeover:
                            last_takeover = real
                            await self._expire_dead_local_workers()
                            await self._refresh_queues()
                            await self._reconcile()
                        # Again: runs adopted during the awaits above took slots.
                        room = max(0, self.max_active - len(self.active) - self._reserved)
                        self._reserved += min(room, 256)
                        # Claimed runs still loading their history count too.
                        local = dict(self._activating)
                        for held in self.active.values():
                            local[held.queue] = local.get(held.queue, 0) + 1
                        try:
                            claims = await self.store.claim(
                                self.worker_id, self.names, min(room, 256), now=now,
                                real_now=real, queues=self.queues, local=local,
                                ahead=self.lookahead)
                        finally:
                            self._reserved -= min(room, 256)
                        self._reserved += len(claims)  # released by _activate
                        for claim in claims:
                            self._activating[claim.queue] = (
                                self._activating.get(claim.queue, 0) + 1)
                        if claims:
                            self._spawn(self._activate(claims))
                        if room and len(claims) == min(room, 256):
                            timeout = 0
                        elif due is not None and due > now:
                            timeout = min(timeout, due - now)
                    elif due is not None:
                        timeout = min(timeout, due - self.lookahead - now)
                await self.tasks.poll(self.queues)
                if time.monotonic() - last_inbox_poll >= self.poll_interval:
                    # Messages stored by other processes for runs we hold.
                    last_inbox_poll = time.monotonic()
                    for run_id in await self.store.runs_with_inbox(self.worker_id):
                        inbox.check(self, run_id)
            except asyncio.CancelledError:
                raise
            except DatabaseFileLostError as exc:
                self._fail(exc)
                return
            except DuroError as exc:
                log.warning("worker loop: %s", exc)
                timeout = self.poll_interval
            except Exception:
                log.exception("worker loop failed; retrying")
                timeout = self.poll_interval
            look_at = time.monotonic() + max(0.0, timeout)
            await self._wait(min(timeout, wake_in))

    def _fail(self, exc: DuroError) -> None:
        """Stop for good: the store can no longer be trusted (its file was deleted or
        replaced). Nothing more is claimed or run; waiters read the store again, which
        raises the same error; :meth:`wait_failed` returns it."""
        log.error("worker stops: %s", exc)
        self.failure = exc
        self._stopping = True
        for inst in list(self.active.values()):
            self._drop(inst, release=False)  # releasing would be one more failing write
        for run_id in list(self._waiters):
            self._wake_waiters(run_id)
        self._failed.set()

    async def wait_failed(self) -> DuroError:
        """Wait until the worker stops for good on a store it cannot trust; the error."""
        await self._failed.wait()
        assert self.failure is not None
        return self.failure

    async def _wait(self, timeout: float) -> None:
        """Until poked, or ``timeout`` seconds."""
        if timeout > 0:
            if self._gc_tuned and timeout >= _IDLE_GC_WAIT and self._idle():
                # Nothing to run and nothing due for a while: a collection now delays
                # nothing, unlike one that falls inside the next burst. The wait is
                # shortened by what it took (the poll it delays comes no later).
                started = time.monotonic()
                if collect_young_when_idle():
                    timeout -= time.monotonic() - started
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._notify.wait(), timeout)
                return
        await asyncio.sleep(0)

    def _idle(self) -> bool:
        """Whether this worker has nothing to do for at least ``_IDLE_GC_AHEAD`` seconds:
        nothing ready on the event loop (cancelled handles, like a finished wait's
        timeout, do not count; only a stock asyncio loop can tell), no step or write of a
        held run in flight, and no wake-up or record flush of a held run due sooner.
        (The loop's own timers are no guide: a database driver's listener polls with
        short timeouts all the time.)"""
        ready = getattr(self.loop, "_ready", None)
        if ready is None or any(not handle._cancelled for handle in ready):
            return False
        if self._wakeups and self._wakeups[0][0] < self.clock.now() + _IDLE_GC_AHEAD:
            return False
        assert self.loop is not None
        if self._flushes and self._flushes[0][0] < self.loop.time() + _IDLE_GC_AHEAD:
            return False
        return not any(inst.inflight for inst in self.active.values())

    def _poke(self) -> None:
        """Wake the main loop to look at the store (work may be waiting, or room freed)."""
        self._look = True
        self._notify.set()

    async def _lease_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.lease / 3)
            try:
                ok = await self.store.renew_worker(self.worker_id, real_now=time.time(),
                                                   lease=self.lease)
                if not ok:
                    log.warning("worker lease was lost; re-registering")
                    await self.store.register_worker(self.worker_id, self.host, os.getpid(),
                                                     real_now=time.time(), lease=self.lease)
            except DuroError as exc:
                log.warning("could not renew the worker lease: %s", exc)

    async def _reconcile(self) -> None:
        """Hand back runs the store says we own but we do not hold (a write and the
        release after it both failed, say): otherwise our live lease would keep every
        other worker away from them."""
        if self._reserved:
            return  # claims or adoptions in flight: their runs are not in `active` yet
        for run_id, epoch in await self.store.owned_runs(self.worker_id):
            if run_id not in self.active:
                log.warning("run %s is ours in the store but not held here; releasing it",
                            run_id)
                await self._release(run_id, epoch)

    async def _expire_dead_local_workers(self) -> None:
        # Same machine: a worker whose process is gone is dead now, not in `lease` seconds.
        pids = await self.store.worker_pids(self.host)
        dead = [p for p in pids if p != os.getpid() and not _pid_alive(p)]
        if dead:
            await self.store.expire_dead_workers(self.host, dead)

    def _spawn(self, coro: Any) -> None:
        # Explicitly on the worker's loop: host callbacks run while a workflow's loop is
        # the running one, and ensure_future() would put the task there.
        assert self.loop is not None
        task = self.loop.create_task(coro)
        self._activations.add(task)
        task.add_done_callback(self._activations.discard)

    # -- activation ---------------------------------------------------------------------

    def _new_instance(self, claim: Claim) -> RunInstance:
        inst = RunInstance(workflow=self.workflows[claim.workflow_name], run_id=claim.run_id,
                           workflow_id=claim.workflow_id, epoch=claim.epoch, host=self)
        inst.queue = claim.queue
        return inst

    async def _activate(self, claims: list[Claim]) -> None:
        """Take up a batch of claimed runs: one read for all of them (histories of those
        not cached here, heartbeats, which have messages waiting), then each resumes."""
        taken = claims
        handed: set[str] = set()
        try:
            if any(c.recoveries >= recovery.SUSPECT_AFTER for c in claims):
                for claim in claims:
                    if claim.recoveries > self.max_recoveries:
                        await recovery.park_poisoned(self, claim)
                    elif claim.recoveries >= recovery.SUSPECT_AFTER:
                        handed.add(claim.run_id)
                        self._spawn(recovery.try_suspect(self, claim))
                claims = [c for c in claims if c.recoveries < recovery.SUSPECT_AFTER]
            cached: dict[str, RunInstance] = {}
            for claim in claims:
                inst = self.cache.pop(claim.run_id, None)
                if inst is not None and inst.history_len != claim.history_len:
                    inst.close()
                elif inst is not None:
                    cached[claim.run_id] = inst
            try:
                loaded, unreadable = await self.load_runs(
                    [c.run_id for c in claims],
                    history={c.run_id for c in claims if c.run_id not in cached})
            except DuroError as exc:
                log.warning("could not load %d claimed runs: %s", len(claims), exc)
                for inst in cached.values():
                    inst.close()
                for claim in claims:
                    await self._release(claim.run_id, claim.epoch)
                return
            for claim in claims:
                try:
                    self._take_up(claim, cached.get(claim.run_id), loaded[claim.run_id],
                                  unreadable.get(claim.run_id))
                except Exception:
                    log.exception("could not take up run %s", claim.run_id)
        finally:
            for claim in taken:
                if claim.run_id not in handed:  # a suspect's slot is freed by its trial
                    self._reserved -= 1
                    self._activating[claim.queue] -= 1

    async def load_runs(
        self, run_ids: list[str], *, history: set[str] | None = None,
    ) -> tuple[dict[str, LoadedRun], dict[str, DuroError]]:
        """:meth:`Store.load_runs`, with the histories' payloads decoded (codecs); runs
        whose payloads cannot be decoded (a key or blob missing...) come back apart, with
        why: they are parked, not replayed."""
        loaded = await self.store.load_runs(run_ids, history=history)
        unreadable: dict[str, DuroError] = {}
        for run_id, run in list(loaded.items()):
            if not run.history:
                continue
            try:
                decoded = await self.payloads.decode_history(run.history)
            except PayloadDecodeError as exc:
                unreadable[run_id] = exc
                continue
            if decoded is not run.history:
                loaded[run_id] = dataclasses.replace(run, history=decoded)
        return loaded, unreadable

    def _take_up(self, claim: Claim, inst: RunInstance | None, loaded: LoadedRun,
                 unreadable: DuroError | None = None) -> None:
        if unreadable is not None:
            inst = self._new_instance(claim)
            self.active[claim.run_id] = inst
            inst.park_error = unreadable
        elif inst is None:
            inst = self._new_instance(claim)
            self.active[claim.run_id] = inst
            inst.replay(loaded.history or [], loaded.heartbeats,
                        expected_len=claim.history_len)
        else:
            inst.epoch = claim.epoch
            inst.active = True
            self.active[claim.run_id] = inst
        if loaded.inbox and inst.park_error is None:
            # Messages first (a cancel must not wait behind a re-suspension), then the rest.
            self._spawn(self._take_up_messages(inst))
        else:
            self._resume(inst)

    async def _take_up_messages(self, inst: RunInstance) -> None:
        await inbox.consume(self, inst, after=False)
        if self.active.get(inst.run_id) is inst:
            self._resume(inst)

    def _resume(self, inst: RunInstance) -> None:
        """At the live frontier: start what replay left pending, fire what is due."""
        if inst.park_error is None and not (inst.main is not None and inst.main.done()):
            now = self.clock.now()
            if inst.deadline_at is not None:
                if inst.deadline_at <= now:
                    decide.time_out(self, inst)
                    return
                decide.add_wakeup(self, inst.deadline_at, inst.run_id)
            for cmd in inst.pending():
                if isinstance(cmd, ChildCommand):
                    if cmd.state == "new":
                        self.child_issued(inst, cmd)
                elif isinstance(cmd, StepCommand):
                    if cmd.state in ("new", "backoff"):
                        if cmd.retry_at is None or cmd.retry_at <= now:
                            steps.start_step(self, inst, cmd)
                        else:
                            decide.add_wakeup(self, cmd.retry_at, inst.run_id)
                elif cmd.state == "pending" and cmd.fire_at > now:
                    self.timer_started(inst, cmd)
            decide.fire_due_timers(self, inst, now)
        decide.after(self, inst)

    # -- writes -----------------------------------------------------------------------------

    async def _append(self, inst: RunInstance, events: list[NewEvent], *,
                      encoded: bool = False, **kw: Any) -> bool:
        """Append for a run this worker owns (the outbox first); on any failure the run
        is dropped. Payloads given as JSON are stored through the codecs
        (:meth:`_append_coded`); ``encoded``: they already are.
        """
        if self.payloads.active and not encoded:
            return await self._append_coded(inst, events, **kw)
        if inst.outbox:
            events = inst.outbox + events
            inst.outbox = []
        seq = inst.history_len
        inst.history_len += len(events)
        inst.writing += 1  # timers wait for what this delivers (decide.fire_due_timers)
        try:
            if encoded and kw.get("result") is not None:  # the run's result: its last
                kw["result"] = events[-1].data            # event's, in stored form
            await self.store.append(inst.run_id, inst.epoch, seq, events,
                                    now=self.clock.now(), **kw)
        except Fenced:
            # Another worker owns the run, or an earlier write of ours failed and this
            # one did not continue the stored history. Either way the instance is not
            # what the store holds: drop it; the release (fenced: a no-op for a run
            # another worker owns) lets it be loaded again from the store.
            log.info("run %s moved on in the store; dropping it here", inst.run_id)
            self._drop(inst)
            return False
        except DataRejectedError as exc:
            # The same write can never succeed (a value too large to store, a constraint
            # of the database's own): retrying would run the run's steps again and
            # again for nothing. Parked, it says why and waits for a fix.
            self.park_unwritable(inst, exc)
            return False
        except StoreError as exc:  # a store fault that may pass (store/_protocol.py)
            log.warning("could not write run %s: %s; it will be retried", inst.run_id, exc)
            self._drop(inst)
            return False
        except Exception as exc:
            # Outside the store's contract: a bug (in the store or in duro), which would
            # fail the same way at every retry, forever. Parked with it instead.
            self.park_unwritable(inst, exc)
            return False
        finally:
            inst.writing -= 1
        if inst.history_len > self.history_warning and not inst.warned_history:
            inst.warned_history = True
            log.warning("run %s of %s has %d history events (warning at %d, limit %d): "
                        "long-lived loops should use duro.continue_as_new()", inst.run_id,
                        inst.workflow.name, inst.history_len, self.history_warning,
                        self.history_limit)
        return True

    async def _append_coded(self, inst: RunInstance, events: list[NewEvent],
                            **kw: Any) -> bool:
        """:meth:`_append` with codecs: payloads encoded first.

        A write whose payloads encode without awaiting (the usual case: small payloads,
        no offload) goes straight to the store, as without codecs. Any other takes the
        run's turn, and so do the run's writes after it until it is written: encoding
        awaits, and a write overtaking an earlier one of the same run would be refused
        (it must continue the stored history).
        """
        try:
            if not inst.turns:
                pending = inst.outbox + events if inst.outbox else events
                ready = self.payloads.try_encode_events(pending)
                if ready is not None:
                    inst.outbox = []
                    return await self._append(inst, ready, encoded=True, **kw)
            async with _turn(inst):
                if inst.outbox:
                    events = inst.outbox + events
                    inst.outbox = []
                inst.writing += 1  # due timers wait while this outcome is encoded
                try:
                    events = await self.payloads.encode_events(events)
                finally:
                    inst.writing -= 1
                return await self._append(inst, events, encoded=True, **kw)
        except Exception as exc:  # a codec failed (a blob store down, say)
            log.warning("could not encode the events of run %s: %s; it will be retried",
                        inst.run_id, exc)
            self._drop(inst)
            return False

    def park_unwritable(self, inst: RunInstance, exc: Exception) -> None:
        """Park a run whose write the store refused for good (:class:`DataRejectedError`)
        or failed outside its contract (a bug: see ``store/_protocol.py``), once: the
        run leaves ``active`` at once, so a second failing write of it parks nothing
        more. Whatever it was doing (running, finishing, suspending) stops."""
        if self.active.get(inst.run_id) is not inst:
            return  # dropped, or parked already
        if not isinstance(exc, DuroError):
            log.error("run %s: the store raised %s, which is no store fault: a bug",
                      inst.run_id, type(exc).__name__, exc_info=exc)
        inst.finishing = True
        del self.active[inst.run_id]
        self._spawn(decide.park(self, inst, exc))

    def write_turn(self, inst: RunInstance) -> contextlib.AbstractAsyncContextManager[Any]:
        """Hold while taking a run's next sequence numbers and writing them: with codecs
        the run's turn (see :meth:`_append_coded`); without, nothing (nothing awaits
        before the store has the write)."""
        return _turn(inst) if self.payloads.active else _NO_TURN

    def _drop(self, inst: RunInstance, *, release: bool = True) -> None:
        """Forget a run whose write failed or was fenced, and hand it back (the release is
        fenced too: it does nothing to a run another worker owns now)."""
        if self.active.get(inst.run_id) is inst:
            del self.active[inst.run_id]
        steps.abandon_steps(self, inst)
        inst.close()
        if release:
            self._spawn(self._release(inst.run_id, inst.epoch))
        self._poke()

    async def _release(self, run_id: str, epoch: int) -> None:
        try:
            await self.store.release(run_id, epoch, now=self.clock.now())
        except DuroError as exc:
            log.warning("could not release run %s: %s", run_id, exc)

    # -- host callbacks from the instance --------------------------------------------------

    def step_issued(self, inst: RunInstance, cmd: StepCommand) -> None:
        steps.start_step(self, inst, cmd)

    def step_cancelled(self, inst: RunInstance, cmd: StepCommand) -> None:
        if cmd.task is not None and not cmd.task.done():
            cmd.task.cancel()
        if cmd.step.queue is not None and not inst.replaying:
            self._spawn(self.store.cancel_task(f"{inst.run_id}:{cmd.op}:{cmd.attempts + 1}"))

    def timer_started(self, inst: RunInstance, cmd: TimerCommand) -> None:
        if cmd.fire_at < math.inf:  # asyncio.sleep(math.inf) never wakes
            decide.add_wakeup(self, cmd.fire_at, inst.run_id)

    def child_issued(self, inst: RunInstance, cmd: ChildCommand) -> None:
        cmd.state = "starting"
        inst.inflight += 1
        self._spawn(self._start_child(inst, cmd))

    def child_cancelled(self, inst: RunInstance, cmd: ChildCommand) -> None:
        if cmd.run_id is not None and not cmd.cancel_sent:
            cmd.cancel_sent = True
            self._spawn(self._cancel_child(cmd.workflow_id))

    async def _cancel_child(self, workflow_id: str) -> None:
        try:
            record = await self.store.send_message(workflow_id, MessageKind.CANCEL, None, None,
                                                   now=self.clock.now())
        except RunNotFoundError:
            return  # it ended meanwhile
        except DuroError as exc:
            log.warning("could not cancel child %s: %s", workflow_id, exc)
            return
        self.inbox_hint(record.run_id)

    async def _start_child(self, inst: RunInstance, cmd: ChildCommand) -> None:
        now = self.clock.now()
        local = self.reserve_slot(cmd.workflow.name, cmd.workflow.queue)
        run_id = str(uuid.uuid4())
        deadline = now + cmd.execution_timeout if cmd.execution_timeout else None
        links = RunLinks(parent_run_id=inst.run_id, parent_op=cmd.op,
                         parent_close=cmd.parent_close, deadline_at=deadline)
        adopted = False
        try:
            async with self.write_turn(inst):
                events = inst.outbox
                inst.outbox = []
                seq = inst.history_len
                inst.history_len += len(events) + 1
                stored = cmd.input
                if self.payloads.active:
                    events = await self.payloads.encode_events(events)
                    stored = await self.payloads.encode(cmd.input) or cmd.input
                inst.writing += 1
                try:
                    record, event = await self.store.start_child(
                        inst.run_id, inst.epoch, seq, events, op=cmd.op, run_id=run_id,
                        workflow_id=cmd.workflow_id, workflow_name=cmd.workflow.name,
                        input=stored, links=links,
                        owner=self.worker_id if local else None, now=now,
                        placement=Placement(queue=cmd.workflow.queue),
                        max_depth=self.max_child_depth)
                except (Fenced, StoreError):
                    raise
                except Exception as exc:  # outside the store's contract: see _append
                    self.park_unwritable(inst, exc)
                    return
                finally:
                    inst.writing -= 1
            if record is not None and local:
                adopted = True
                self.adopt(Claim(run_id=record.run_id, workflow_id=record.workflow_id,
                                 workflow_name=record.workflow_name, epoch=record.epoch,
                                 history_len=1, queue=record.queue), cmd.input, now,
                           links=links)
        except Fenced:
            self._drop(inst)
            return
        except Exception as exc:
            log.warning("could not start child %s: %s", cmd.workflow_id, exc)
            self._drop(inst)
            return
        finally:
            if local and not adopted:
                self.unreserve_slot()
        inst.inflight -= 1
        inst.apply(event.kind, event.op, event.name, event.data, event.meta, event.ts)
        if cmd.state == "cancelled" and record is not None:
            self.child_cancelled(inst, cmd)
        decide.after(self, inst)
