"""The worker: claims runs, replays them, runs their steps, fires their timers,
suspends runs that only wait, and takes over runs of dead workers.

Everything happens on one asyncio loop; sync steps run in a thread pool and all
writes go through the store's group-commit writer. Who owns what:

- :class:`Worker` (here): the lifecycle, the main loop (claims, take-up, the look at
  the store), the lease, and what the engine calls (local starts, notifications).
- ``_held.HeldRun``: one run in memory, its instance and the worker's bookkeeping for
  it (epoch, history length, outbox, writes in flight, write turn...), and its writes;
  ``_held.HeldRuns``: which runs are held (active, cached) and the room left.
- ``_wakeups.Wakeups``: when held runs are due; ``_decide.Flushes``: outboxes waiting
  to be written alone.
- ``_decide`` (what a run does after each activation), ``_local_steps`` (step
  attempts), ``_inbox`` (messages into histories): functions over a held run, through
  this class's public surface; ``_recovery.Trials``: suspects on trial, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from duro._clock import Clock, SystemClock
from duro._history import EventKind, RunStartedMeta
from duro._local import NOT_HELD, Outcome
from duro.errors import DatabaseFileLostError, DuroError, PayloadDecodeError
from duro.interceptors._chain import check_interceptors, overriding
from duro.interceptors._worker import WorkerInterceptor
from duro.serde import CodecChain, PayloadConverter
from duro.store import Claim, LoadedRun, RunLinks, Store
from duro.store._records import QueueConfig
from duro.worker import _decide as decide
from duro.worker import _inbox as inbox
from duro.worker import _local_steps as steps
from duro.worker import _recovery as recovery
from duro.worker._cache import CacheSweep
from duro.worker._gc import collect_young_when_idle, release_gc, tune_gc_for_worker
from duro.worker._held import HeldRun, HeldRuns
from duro.worker._local_start import LocalStart
from duro.worker._options import check_options
from duro.worker._queries import QueryAnswers
from duro.worker._retention import RetentionPolicy, retention_loop
from duro.worker._scheduler import Scheduler
from duro.worker._streams import DEFAULT_STREAM_LIMIT, Streams
from duro.worker._tasks import TaskRunner
from duro.worker._wakeups import Wakeups
from duro.workflow import _guard
from duro.workflow._api import Workflow
from duro.workflow._commands import ExternalCommand
from duro.workflow._instance import ChildCommand, RunInstance, StepCommand

__all__ = ["LocalStart", "Outcome", "Worker"]


log = logging.getLogger("duro.worker")

# Seconds between probes for workers whose database session ended (a killed process): the
# bound on noticing such a death, whatever the lease; one cheap read per probe.
_LIVENESS_PROBE = 0.5
_FAIR_AFTER_MIN = 0.5  # seconds: the least grace of fair claims (see Worker._fair_after)

# A main-loop wait at least this long (seconds), with nothing else to run and nothing due
# for _IDLE_GC_AHEAD seconds, is idle time for a young garbage collection
# (_gc.collect_young_when_idle; ~0.2 s with 10,000 runs held, a few ms without).
_IDLE_GC_WAIT = 0.05
_IDLE_GC_AHEAD = 0.25

# How deeply children nest by default: far more than any tree a workflow walks on
# purpose, and a runaway recursion stops after this many runs instead of thousands a
# second (each level is a run and a transaction).
DEFAULT_MAX_CHILD_DEPTH = 100

_NO_LINKS = RunLinks()
"""A locally started run's links when it has none."""


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
        stream_limit: How many rows (chunks of ``duro.stream()`` and markers) a run's
            stream keeps at most; past it nothing more is kept (a ``truncated`` marker
            says so). The stream is deleted with its run (``retention``).
        interceptors: Worker interceptors (:class:`duro.interceptors.WorkerInterceptor`):
            around each workflow execution, step attempt, signal, update and query.
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
        stream_limit: int = DEFAULT_STREAM_LIMIT,
        interceptors: Sequence[WorkerInterceptor] = (),
    ) -> None:
        check_options({"max_active": max_active, "max_cached": max_cached,
                       "max_threads": max_threads, "lease": lease,
                       "poll_interval": poll_interval,
                       "workflow_task_timeout": workflow_task_timeout,
                       "history_warning": history_warning, "history_limit": history_limit,
                       "queues": queues, "lookahead": lookahead,
                       "max_recoveries": max_recoveries, "max_child_depth": max_child_depth,
                       "stream_limit": stream_limit})
        self.streams = Streams(self, limit=stream_limit)
        self.max_recoveries = max_recoveries
        self.interceptors: tuple[WorkerInterceptor, ...] = tuple(
            check_interceptors(interceptors, WorkerInterceptor))
        self.observers = tuple(
            i for i in self.interceptors
            if type(i).events_recorded is not WorkerInterceptor.events_recorded)
        """The interceptors told of each committed write (``events_recorded``): none
        by default, and then a write costs one falsy check more."""
        self.observer_kinds = tuple((i, i.recorded_kinds) for i in self.observers)
        """Each observer with the kinds it is about (read once, here: None, all)."""
        observed: frozenset[str] | None = frozenset()
        for _, kinds in self.observer_kinds:
            observed = None if kinds is None or observed is None \
                else observed | frozenset(kinds)  # a tuple or a set works too
        self.observed_kinds = observed
        """The kinds of event some observer is about (None: every write is told)."""
        self.step_hooks: tuple[WorkerInterceptor, ...] = tuple(
            overriding(self.interceptors, WorkerInterceptor, "execute_step"))
        """The interceptors whose ``execute_step`` takes part in each step attempt
        (worked out once, not per attempt)."""
        self.attempt_hooks: tuple[WorkerInterceptor, ...] = tuple(
            overriding(self.interceptors, WorkerInterceptor, "attempt_started"))
        """The interceptors told of each step attempt's start and end
        (``attempt_started``)."""
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
        self.lease = lease
        self.poll_interval = poll_interval
        # Several workers on one database share the ready runs (store/_rules.fair_share):
        # a run its peers left unclaimed this long (two of their polls) is anyone's.
        self._fair_after = max(2 * poll_interval, _FAIR_AFTER_MIN)
        self.workflow_task_timeout = workflow_task_timeout
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.host = socket.gethostname()
        self.executor = ThreadPoolExecutor(max_workers=max_threads,
                                           thread_name_prefix="duro-step")
        self.tasks = TaskRunner(self, max_tasks=max_threads)
        self.queries = QueryAnswers(self)
        self.cache_sweep = CacheSweep(self)
        self.scheduler = Scheduler(store, clock=self.clock, workflows=self.names,
                                   poll_interval=poll_interval, on_started=self.wake,
                                   observers=self.interceptors)
        self.runs = HeldRuns(max_active=max_active, max_cached=max_cached)
        """The runs held in memory (active and cached) and the room for more."""
        self.parking: set[str] = set()
        """Runs out of ``runs`` whose parking is not written yet: still ours in the store
        meanwhile, and not to be released as if lost (``_reconcile``)."""
        self._notify = asyncio.Event()
        self.wakeups = Wakeups(on_earlier=self._notify.set)
        """When held runs are due (timers, backoffs, deadlines)."""
        self.flushes = decide.Flushes(self)
        self.trials = recovery.Trials(self)
        self._waiters: dict[str, list[asyncio.Future[Outcome | None]]] = {}
        self._inbox_hints: set[str] = set()
        self._look = True  # the main loop should look at the store on its next turn
        self._tasks: list[asyncio.Task[Any]] = []
        self._activations: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._unsubscribe: Callable[[], None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.context = contextvars.Context()
        """The context variables the worker's tasks (step attempts, writes) start from:
        the worker's own, taken when it starts (see :meth:`spawn`)."""
        self.steps_executed = 0
        self.failure: DuroError | None = None
        """Why the worker stopped on its own (see :meth:`wait_failed`), if it did."""
        self._failed = asyncio.Event()

    @property
    def active(self) -> dict[str, HeldRun]:
        """The runs held and executing here, by run id (read only)."""
        return self.runs.active

    @property
    def cache(self) -> dict[str, HeldRun]:
        """Suspended runs kept in memory for a quick resume, by run id (read only)."""
        return self.runs.cache

    @property
    def max_active(self) -> int:
        return self.runs.max_active

    @property
    def max_cached(self) -> int:
        return self.runs.max_cached

    @property
    def stopping(self) -> bool:
        """Whether the worker is stopping (or stopped): nothing new is started."""
        return self._stopping

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Register the lease, re-queue runs parked by other code, and start working."""
        self.loop = asyncio.get_running_loop()
        self.context = contextvars.copy_context()
        if self.tune_gc:
            self._gc_tuned = tune_gc_for_worker()
        _guard.install(self.workflow_task_timeout)
        await self.store.register_worker(self.worker_id, self.host, os.getpid(),
                                         real_now=time.time(), lease=self.lease,
                                         queues=self.queues)
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
        for held in list(self.runs.active.values()):
            steps.interrupt_waits(held)  # a long poll is not work to finish: asked again
            decide.after(self, held)  # runs held for a near timer are suspended now
        started = time.monotonic()
        while self.runs.active and time.monotonic() - started < grace:
            await asyncio.sleep(0.02)
        log.info("drained in %.2fs; %d run(s) still held are released now",
                 time.monotonic() - started, len(self.runs.active))
        return not self.runs.active

    async def stop(self) -> None:
        """Stop claiming, abandon running steps, release every owned run at once."""
        self._stopping = True
        self._poke()
        if self._unsubscribe:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        for held in list(self.runs.active.values()):
            steps.abandon_steps(held)
        await asyncio.gather(*self._tasks, *self._activations, return_exceptions=True)
        for held in self.runs.clear():
            held.close()
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

    def stream_waiter(self, run_id: str) -> asyncio.Future[None]:
        """A future resolved when this worker writes a batch of the run's stream."""
        return self.streams.waiter(run_id)

    def wake_waiters(self, run_id: str, outcome: Outcome | None = None) -> None:
        """Resolve the futures of :meth:`wait_for_close` for the run (it ended here,
        with ``outcome``, or is no longer held)."""
        for fut in self._waiters.pop(run_id, []):
            if not fut.done():
                fut.set_result(outcome)

    def instance(self, run_id: str, *, history_len: int | None = None) -> RunInstance | None:
        """The in-memory instance of a run, if this worker holds one (active or cached);
        with ``history_len``, only if its history is that long (it is current)."""
        held = self.runs.find(run_id)
        if held is None or (history_len is not None and held.history_len != history_len):
            return None
        return held.inst

    def answer_query(self, run_id: str, history_len: int, name: str,
                     args: list[Any], headers: Mapping[str, str] | None = None) -> Any:
        """The query's answer from the run's instance held here, if it has exactly
        ``history_len`` events (the stored history: an answer from it is current);
        else ``NOT_HELD``."""
        inst = self.instance(run_id, history_len=history_len)
        if inst is None:
            return NOT_HELD
        return inst.query(name, args, headers)

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
        held = self.runs.forget(run_id)
        if held is not None:
            steps.abandon_steps(held)
            held.close()
        self.wake_waiters(run_id)

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
                or self.runs.room() <= 0):
            return False
        self.runs.reserve()
        return True

    def unreserve_slot(self) -> None:
        """Give back a slot of :meth:`reserve_slot` whose run was not created."""
        self.runs.unreserve()

    @contextlib.contextmanager
    def local_start(self, name: str, queue: str = "default") -> Iterator[LocalStart]:
        """:meth:`reserve_slot` for the block: a run created in it is owned by this
        worker if ``start.local`` (then ``start.adopt(...)`` runs it); otherwise, or if
        it was not adopted, the slot is given back when the block ends."""
        start = LocalStart(self, self.reserve_slot(name, queue))
        try:
            yield start
        finally:
            if start.local and not start.adopted:
                self.unreserve_slot()

    def adopt(self, claim: Claim, input: bytes, ts: float,
              links: RunLinks | None = None) -> None:
        """Run a run this worker created already owned (no claim round trip)."""
        self.runs.unreserve()
        held = self._hold_new(claim)
        held.history_len = 1
        links = links or _NO_LINKS
        # What the stored run_started event's meta says, handed over as it is (not
        # encoded to be decoded again at once).
        namespace = None if claim.namespace == "default" else claim.namespace
        start_meta = None if links is _NO_LINKS and namespace is None else RunStartedMeta(
            parent_run_id=links.parent_run_id, parent_op=links.parent_op,
            deadline_at=links.deadline_at,
            # Its own copy, as decoding would make: a step that writes to its run's
            # headers (a dict) must not reach the creator's (a child's parent's).
            headers=dict(links.headers) if links.headers else None,
            budgets=links.budgets, namespace=namespace)
        held.inst.apply(EventKind.RUN_STARTED, None, claim.workflow_name, input, None, ts,
                        start_meta=start_meta)
        self._resume(held)

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
                next_wakeup = self.wakeups.next_at()
                wake_in = next_wakeup - now if next_wakeup is not None else timeout
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
                room = self.runs.room()
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
                        room = max(0, self.runs.room())
                        self.runs.reserve(min(room, 256))
                        # Claimed runs still loading their history count too.
                        local = self.runs.per_queue()
                        try:
                            claims = await self.store.claim(
                                self.worker_id, self.names, min(room, 256), now=now,
                                real_now=real, queues=self.queues, local=local,
                                ahead=self.lookahead, fair_after=self._fair_after)
                        finally:
                            self.runs.unreserve(min(room, 256))
                        self.runs.claimed(claims)  # taken up by _activate
                        if claims:
                            self.spawn(self._activate(claims))
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
                    # Queries from clients without the code (client/_query.py).
                    await self.queries.poll()
                    await self.cache_sweep.poll()  # expired step cache entries
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
        for held in list(self.runs.active.values()):
            self.drop(held, release=False)  # releasing would be one more failing write
        for run_id in list(self._waiters):
            self.wake_waiters(run_id)
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
        timeout, do not count; only a stock asyncio loop can tell), nothing of a held
        run in flight (:meth:`HeldRuns.busy`: a step, a write not yet committed, a claim
        taking its slot up), no step task run here for a step queue, and no wake-up or
        record flush of a held run due sooner.
        (The loop's own timers are no guide: a database driver's listener polls with
        short timeouts all the time. Nor is an empty ready queue: a burst of runs ending
        together waits on their last commits with nothing ready, and a ~50 ms collection
        there held all of them up.)"""
        ready = getattr(self.loop, "_ready", None)
        if ready is None or any(not handle._cancelled for handle in ready):
            return False
        wakeup = self.wakeups.next_at()
        if wakeup is not None and wakeup < self.clock.now() + _IDLE_GC_AHEAD:
            return False
        assert self.loop is not None
        flush = self.flushes.next_at()
        if flush is not None and flush < self.loop.time() + _IDLE_GC_AHEAD:
            return False
        return not self.runs.busy() and not self.tasks.running

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
                                                     real_now=time.time(), lease=self.lease,
                                                     queues=self.queues)
            except DuroError as exc:
                log.warning("could not renew the worker lease: %s", exc)

    async def _reconcile(self) -> None:
        """Hand back runs the store says we own but we do not hold (a write and the
        release after it both failed, say): otherwise our live lease would keep every
        other worker away from them."""
        if self.runs.reserved:
            return  # claims or adoptions in flight: their runs are not in `active` yet
        for run_id, epoch in await self.store.owned_runs(self.worker_id):
            if run_id not in self.runs.active and run_id not in self.parking:
                log.warning("run %s is ours in the store but not held here; releasing it",
                            run_id)
                await self.release(run_id, epoch)

    async def _expire_dead_local_workers(self) -> None:
        # Same machine: a worker whose process is gone is dead now, not in `lease` seconds.
        pids = await self.store.worker_pids(self.host)
        dead = [p for p in pids if p != os.getpid() and not _pid_alive(p)]
        if dead:
            await self.store.expire_dead_workers(self.host, dead)

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` as a task of the worker's, waited for when it stops."""
        # Explicitly on the worker's loop: host callbacks run while a workflow's loop is
        # the running one, and ensure_future() would put the task there. In the worker's
        # context, not the caller's: a run started and adopted here would otherwise run
        # its steps in its starter's context variables (a request's, its current span),
        # which a run claimed elsewhere, or recovered, never sees.
        assert self.loop is not None
        task = self.loop.create_task(coro, context=self.context.copy())
        self._activations.add(task)
        task.add_done_callback(self._activations.discard)

    # -- activation ---------------------------------------------------------------------

    def _hold_new(self, claim: Claim) -> HeldRun:
        """A fresh instance of the claimed run, held as active."""
        held = HeldRun(self, self.workflows[claim.workflow_name], run_id=claim.run_id,
                       workflow_id=claim.workflow_id, epoch=claim.epoch, queue=claim.queue)
        self.runs.hold(held)
        return held

    async def _activate(self, claims: list[Claim]) -> None:
        """Take up a batch of claimed runs: one read for all of them (histories of those
        not cached here, heartbeats, which have messages waiting), then each resumes."""
        taken = claims
        handed: set[str] = set()
        try:
            if any(c.recoveries >= recovery.SUSPECT_AFTER for c in claims):
                for claim in claims:
                    if claim.recoveries > self.max_recoveries:
                        await self.trials.park_poisoned(claim)
                    elif claim.recoveries >= recovery.SUSPECT_AFTER:
                        handed.add(claim.run_id)
                        self.spawn(self.trials.try_suspect(claim))
                claims = [c for c in claims if c.recoveries < recovery.SUSPECT_AFTER]
            cached: dict[str, HeldRun] = {}
            for claim in claims:
                held = self.runs.take_cached(claim.run_id)
                if held is not None and held.history_len != claim.history_len:
                    held.close()
                elif held is not None:
                    cached[claim.run_id] = held
            try:
                loaded, unreadable = await self.load_runs(
                    [c.run_id for c in claims],
                    history={c.run_id for c in claims if c.run_id not in cached})
            except DuroError as exc:
                log.warning("could not load %d claimed runs: %s", len(claims), exc)
                for held in cached.values():
                    held.close()
                for claim in claims:
                    await self.release(claim.run_id, claim.epoch)
                return
            for claim in claims:
                try:
                    self.take_up(claim, cached.get(claim.run_id), loaded[claim.run_id],
                                 unreadable.get(claim.run_id))
                except Exception:
                    log.exception("could not take up run %s", claim.run_id)
        finally:
            for claim in taken:
                if claim.run_id not in handed:  # a suspect's slot is freed by its trial
                    self.runs.taken_up(claim)

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

    def take_up(self, claim: Claim, held: HeldRun | None, loaded: LoadedRun,
                unreadable: DuroError | None = None) -> None:
        """Hold a claimed run and let it go on: ``held`` (cached here at the claim's
        history length) as it is, else a fresh instance replaying the loaded history;
        parked at once if that history could not be decoded (``unreadable``)."""
        if unreadable is not None:
            held = self._hold_new(claim)
            held.inst.park(unreadable)
        elif held is None:
            held = self._hold_new(claim)
            history = loaded.history or []
            held.history_len = len(history)
            held.inst.replay(history, loaded.heartbeats, expected_len=claim.history_len)
        else:
            held.epoch = claim.epoch
            held.inst.active = True
            self.runs.hold(held)
        if loaded.inbox and held.inst.park_error is None:
            # Messages first (a cancel must not wait behind a re-suspension), then the rest.
            self.spawn(self._take_up_messages(held))
        else:
            self._resume(held)

    async def _take_up_messages(self, held: HeldRun) -> None:
        await inbox.consume(self, held, after=False)
        if self.runs.holds(held):
            self._resume(held)

    def _resume(self, held: HeldRun) -> None:
        """At the live frontier: start what replay left pending, fire what is due."""
        inst = held.inst
        if inst.park_error is None and not (inst.main is not None and inst.main.done()):
            now = self.clock.now()
            if inst.deadline_at is not None:
                if inst.deadline_at <= now:
                    decide.time_out(self, held)
                    return
                self.wakeups.add(inst.deadline_at, held.run_id)
            for cmd in inst.pending():
                if isinstance(cmd, ChildCommand):
                    if cmd.state == "new":
                        held.child_issued(inst, cmd)
                elif isinstance(cmd, ExternalCommand):
                    if cmd.state == "new":  # sent (maybe) but not recorded: again
                        held.external_issued(inst, cmd)
                elif isinstance(cmd, StepCommand):
                    if cmd.state in ("new", "backoff"):
                        if cmd.retry_at is None or cmd.retry_at <= now:
                            steps.start_step(self, held, cmd)
                        else:
                            self.wakeups.add(cmd.retry_at, held.run_id)
                    elif cmd.state == "remote" and cmd.awaiting_until is not None:
                        self.wakeups.add(cmd.awaiting_until, held.run_id)
                elif cmd.state == "pending" and cmd.fire_at > now:
                    held.timer_started(inst, cmd)
            decide.fire_due_timers(self, held, now)
            steps.awaiting_timed_out(self, held, now)
        decide.after(self, held)

    # -- runs that fail ------------------------------------------------------------------

    def drop(self, held: HeldRun, *, release: bool = True) -> None:
        """Forget a run whose write failed or was fenced, and hand it back (the release is
        fenced too: it does nothing to a run another worker owns now)."""
        self.runs.discard(held)
        steps.abandon_steps(held)
        held.close()
        if release:
            self.spawn(self.release(held.run_id, held.epoch))
        self._poke()

    async def release(self, run_id: str, epoch: int) -> None:
        """Hand a run back to the store (fenced by ``epoch``): any worker may claim it."""
        try:
            await self.store.release(run_id, epoch, now=self.clock.now())
        except DuroError as exc:
            log.warning("could not release run %s: %s", run_id, exc)
