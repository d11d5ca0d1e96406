"""The worker: claims runs, replays them, runs their steps, fires their timers,
suspends runs that only wait, and takes over runs of dead workers.

Everything happens on one asyncio loop; sync steps run in a thread pool and all
writes go through the store's group-commit writer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from duro._clock import Clock, SystemClock
from duro.errors import DuroError, ErrorInfo, PayloadDecodeError, SerializationError
from duro.serde import encode
from duro.step._step import StepInfo
from duro.store import Claim, Fenced, NewEvent, Store
from duro.worker._steps import error_info, error_payload, run_attempt
from duro.workflow import _guard
from duro.workflow._api import Workflow
from duro.workflow._instance import Park, RunInstance, StepCommand, TimerCommand

__all__ = ["Worker"]

log = logging.getLogger("duro.worker")


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
            this long are taken over.
        poll_interval: Seconds between looks at the store for work from elsewhere.
        workflow_task_timeout: Seconds workflow code may run without awaiting.
    """

    def __init__(
        self,
        store: Store,
        workflows: dict[str, Workflow[Any, Any]],
        *,
        clock: Clock | None = None,
        max_active: int = 2000,
        max_cached: int = 2000,
        max_threads: int = 32,
        lease: float = 5.0,
        poll_interval: float = 0.2,
        workflow_task_timeout: float = 2.0,
    ) -> None:
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
        self.active: dict[str, RunInstance] = {}
        self.cache: collections.OrderedDict[str, RunInstance] = collections.OrderedDict()
        self._wakeups: list[tuple[float, int, str]] = []
        self._wakeup_seq = 0
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._inbox_hints: set[str] = set()
        self._notify = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._activations: set[asyncio.Task[Any]] = set()
        self._stopping = False
        # Slots promised to claims in flight and to claimed runs not yet activated, so
        # that adopting new runs meanwhile cannot overshoot max_active.
        self._reserved = 0
        self._unsubscribe: Callable[[], None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.steps_executed = 0

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Register the lease, re-queue runs parked by other code, and start working."""
        self.loop = asyncio.get_running_loop()
        _guard.install(self.workflow_task_timeout)
        await self.store.register_worker(self.worker_id, self.host, os.getpid(),
                                         real_now=time.time(), lease=self.lease)
        for name, wf in self.workflows.items():
            count = await self.store.unpark(name, wf.code_hash, now=self.clock.now())
            if count:
                log.info("retrying %d parked run(s) of %s with new code", count, name)
        loop = self.loop

        def wake_threadsafe() -> None:
            loop.call_soon_threadsafe(self._notify.set)

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

    async def stop(self) -> None:
        """Stop claiming, abandon running steps, release every owned run at once."""
        self._stopping = True
        self._notify.set()
        if self._unsubscribe:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        for inst in list(self.active.values()):
            self._abandon_steps(inst)
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

    # -- notifications from the engine ----------------------------------------------------

    def wait_for_close(self, run_id: str) -> asyncio.Future[None]:
        """A future that resolves when this worker sees the run end (or drops it)."""
        assert self.loop is not None
        fut: asyncio.Future[None] = self.loop.create_future()
        self._waiters.setdefault(run_id, []).append(fut)
        return fut

    def _wake_waiters(self, run_id: str) -> None:
        for fut in self._waiters.pop(run_id, []):
            if not fut.done():
                fut.set_result(None)

    def wake(self) -> None:
        """Look at the store now (something became ready in this process)."""
        self._notify.set()

    def inbox_hint(self, run_id: str) -> None:
        """A message for this run was just stored (same process)."""
        self._inbox_hints.add(run_id)
        self._notify.set()

    def terminated(self, run_id: str) -> None:
        """The run was terminated from this process: drop it now."""
        inst = self.active.pop(run_id, None) or self.cache.pop(run_id, None)
        if inst is not None:
            self._abandon_steps(inst)
            inst.close()
        self._wake_waiters(run_id)

    def reserve_slot(self, name: str) -> bool:
        """Reserve room for a run the engine is about to create owned by this worker.

        Pair with :meth:`adopt` (if the run was created) or :meth:`unreserve_slot`.
        """
        if (self._stopping or name not in self.workflows
                or len(self.active) + self._reserved >= self.max_active):
            return False
        self._reserved += 1
        return True

    def unreserve_slot(self) -> None:
        self._reserved -= 1

    def adopt(self, claim: Claim, input: bytes, ts: float) -> None:
        """Run a run this worker created already owned (no claim round trip)."""
        self._reserved -= 1
        inst = self._new_instance(claim)
        inst.history_len = 1
        self.active[claim.run_id] = inst
        inst.apply("run_started", None, claim.workflow_name, input, None, ts)
        self._after(inst)

    # -- loops --------------------------------------------------------------------------

    async def _main_loop(self) -> None:
        last_takeover = 0.0
        last_inbox_poll = 0.0
        while not self._stopping:
            self._notify.clear()
            now = self.clock.now()
            timeout = self.poll_interval
            try:
                self._fire_wakeups(now)
                if self._wakeups:
                    timeout = min(timeout, self._wakeups[0][0] - now)
                if self._inbox_hints:
                    hints, self._inbox_hints = self._inbox_hints, set()
                    for run_id in hints:
                        self._check_inbox(run_id)
                room = self.max_active - len(self.active) - self._reserved
                if room > 0:
                    due = await self.store.next_wake_at(self.names)
                    real = time.time()
                    takeover = real - last_takeover >= self.lease / 2
                    if takeover or (due is not None and due <= now):
                        if takeover:
                            last_takeover = real
                            await self._expire_dead_local_workers()
                        self._reserved += min(room, 256)
                        try:
                            claims = await self.store.claim(
                                self.worker_id, self.names, min(room, 256), now=now,
                                real_now=real)
                        finally:
                            self._reserved -= min(room, 256)
                        self._reserved += len(claims)  # released by _activate
                        for claim in claims:
                            self._spawn(self._activate(claim))
                        if len(claims) == min(room, 256):
                            timeout = 0
                        elif due is not None and due > now:
                            timeout = min(timeout, due - now)
                    elif due is not None:
                        timeout = min(timeout, due - now)
                if time.monotonic() - last_inbox_poll >= self.poll_interval:
                    # Messages stored by other processes for runs we hold.
                    last_inbox_poll = time.monotonic()
                    for run_id in await self.store.runs_with_inbox(self.worker_id):
                        self._check_inbox(run_id)
            except asyncio.CancelledError:
                raise
            except DuroError as exc:
                log.warning("worker loop: %s", exc)
                timeout = self.poll_interval
            except Exception:
                log.exception("worker loop failed; retrying")
                timeout = self.poll_interval
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._notify.wait(), timeout)
            else:
                await asyncio.sleep(0)

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

    async def _expire_dead_local_workers(self) -> None:
        # Same machine: a worker whose process is gone is dead now, not in `lease` seconds.
        pids = await self.store.worker_pids(self.host)
        dead = [p for p in pids if p != os.getpid() and not _pid_alive(p)]
        if dead:
            await self.store.expire_dead_workers(self.host, dead)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._activations.add(task)
        task.add_done_callback(self._activations.discard)

    # -- activation ---------------------------------------------------------------------

    def _new_instance(self, claim: Claim) -> RunInstance:
        return RunInstance(workflow=self.workflows[claim.workflow_name], run_id=claim.run_id,
                           workflow_id=claim.workflow_id, epoch=claim.epoch, host=self)

    async def _activate(self, claim: Claim) -> None:
        try:
            await self._activate_claim(claim)
        finally:
            self._reserved -= 1

    async def _activate_claim(self, claim: Claim) -> None:
        inst = self.cache.pop(claim.run_id, None)
        if inst is not None and inst.history_len != claim.history_len:
            inst.close()
            inst = None
        if inst is None:
            inst = self._new_instance(claim)
            try:
                history = await self.store.load_history(claim.run_id)
                heartbeats = await self.store.load_heartbeats(claim.run_id)
            except DuroError as exc:
                log.warning("could not load run %s: %s", claim.run_id, exc)
                await self._release(claim.run_id, claim.epoch)
                return
            self.active[claim.run_id] = inst
            inst.replay(history, heartbeats)
        else:
            inst.epoch = claim.epoch
            inst.active = True
            self.active[claim.run_id] = inst
        # Messages first (a cancel must not wait behind a re-suspension), then the rest.
        await self._consume_inbox(inst, after=False)
        self._resume(inst)

    def _resume(self, inst: RunInstance) -> None:
        """At the live frontier: start what replay left pending, fire what is due."""
        if inst.park_error is None and not (inst.main is not None and inst.main.done()):
            now = self.clock.now()
            for cmd in inst.pending():
                if isinstance(cmd, StepCommand):
                    if cmd.state in ("new", "backoff"):
                        if cmd.retry_at is None or cmd.retry_at <= now:
                            self._start_step(inst, cmd)
                        else:
                            self._add_wakeup(cmd.retry_at, inst.run_id)
                elif cmd.state == "pending":
                    if cmd.fire_at <= now:
                        self._fire_timer(inst, cmd)
                    else:
                        self._add_wakeup(cmd.fire_at, inst.run_id)
        self._after(inst)

    def _check_inbox(self, run_id: str) -> None:
        inst = self.active.get(run_id)
        if inst is not None and not inst.finishing:
            self._spawn(self._consume_inbox(inst))

    async def _consume_inbox(self, inst: RunInstance, *, after: bool = True) -> None:
        messages = await self.store.read_inbox(inst.run_id)
        if not messages or self.active.get(inst.run_id) is not inst or inst.finishing:
            return
        now = self.clock.now()
        events = [NewEvent(kind="cancel_requested" if kind == "cancel" else kind, ts=now,
                           name=name, data=data) for _, kind, name, data in messages]
        inst.inflight += 1
        ok = await self._append(inst, events, consume_inbox_upto=messages[-1][0])
        inst.inflight -= 1
        if ok:
            for ev in events:
                inst.apply(ev.kind, ev.op, ev.name, ev.data, ev.meta, ev.ts)
            if after:
                self._after(inst)

    # -- writes -----------------------------------------------------------------------------

    async def _append(self, inst: RunInstance, events: list[NewEvent], **kw: Any) -> bool:
        """Append for a run this worker owns; on any failure the run is dropped."""
        if inst.outbox:
            events = inst.outbox + events
            inst.outbox = []
        seq = inst.history_len
        inst.history_len += len(events)
        try:
            await self.store.append(inst.run_id, inst.epoch, seq, events,
                                    now=self.clock.now(), **kw)
        except Fenced:
            log.info("run %s is owned by another worker now; dropping it", inst.run_id)
            self._drop(inst, release=False)
            return False
        except Exception as exc:
            log.warning("could not write run %s: %s; it will be retried", inst.run_id, exc)
            self._drop(inst, release=True)
            return False
        return True

    def _drop(self, inst: RunInstance, *, release: bool) -> None:
        if self.active.get(inst.run_id) is inst:
            del self.active[inst.run_id]
        self._abandon_steps(inst)
        inst.close()
        if release:
            self._spawn(self._release(inst.run_id, inst.epoch))
        self._notify.set()

    async def _release(self, run_id: str, epoch: int) -> None:
        try:
            await self.store.release(run_id, epoch, now=self.clock.now())
        except DuroError as exc:
            log.warning("could not release run %s: %s", run_id, exc)

    # -- host callbacks from the instance --------------------------------------------------

    def step_issued(self, inst: RunInstance, cmd: StepCommand) -> None:
        self._start_step(inst, cmd)

    def step_cancelled(self, inst: RunInstance, cmd: StepCommand) -> None:
        if cmd.task is not None and not cmd.task.done():
            cmd.task.cancel()

    def timer_started(self, inst: RunInstance, cmd: TimerCommand) -> None:
        self._add_wakeup(cmd.fire_at, inst.run_id)

    # -- steps --------------------------------------------------------------------------------

    def _start_step(self, inst: RunInstance, cmd: StepCommand) -> None:
        cmd.state = "running"
        inst.inflight += 1
        assert self.loop is not None
        cmd.task = self.loop.create_task(self._run_step(inst, cmd))

    def _abandon_steps(self, inst: RunInstance) -> None:
        for cmd in inst.commands.values():
            if isinstance(cmd, StepCommand) and cmd.task is not None and not cmd.task.done():
                cmd.task.cancel()

    async def _run_step(self, inst: RunInstance, cmd: StepCommand) -> None:
        step = cmd.step
        now = self.clock.now()
        if cmd.first_started is None:
            cmd.first_started = now
        attempt = cmd.attempts + 1
        assert self.loop is not None
        deadline = None
        if step.timeout is not None:
            deadline = self.loop.time() + step.timeout
        if step.total_timeout is not None:
            left = cmd.first_started + step.total_timeout - now
            total = self.loop.time() + max(0.0, left)
            deadline = total if deadline is None else min(deadline, total)
        info = StepInfo(workflow_id=inst.workflow_id, run_id=inst.run_id, step=step.name,
                        seq=cmd.op, attempt=attempt, idempotency_key=f"{inst.run_id}:{cmd.op}",
                        heartbeat_details=cmd.heartbeat, deadline=deadline)
        started = time.perf_counter()
        self.steps_executed += 1
        try:
            data = await run_attempt(
                cmd, info, self.executor, deadline,
                lambda c: self._spawn(self._store_heartbeat(inst.run_id, c.op, c.heartbeat)))
        except asyncio.CancelledError:
            info.cancelled = True
            if cmd.state == "running":
                cmd.state = "cancelled"
            inst.inflight -= 1
            self._after_soon(inst)
            return
        except Exception as exc:
            await self._step_failed(inst, cmd, attempt, exc, time.perf_counter() - started)
            return
        if not inst.active or cmd.state != "running":
            inst.inflight -= 1
            return
        meta = orjson.dumps({"attempt": attempt,
                             "duration": round(time.perf_counter() - started, 6)})
        event = NewEvent(kind="step_completed", ts=self.clock.now(), op=cmd.op, name=step.name,
                         data=data, meta=meta)
        ok = await self._append(inst, [event])
        inst.inflight -= 1
        if ok:
            inst.apply("step_completed", cmd.op, step.name, data, meta, event.ts)
            self._after(inst)

    async def _step_failed(
        self, inst: RunInstance, cmd: StepCommand, attempt: int, exc: Exception, took: float
    ) -> None:
        step = cmd.step
        policy = step.retry
        now = self.clock.now()
        retry_after = getattr(exc, "retry_after", None)
        delay = float(retry_after) if retry_after is not None else policy.delay(attempt)
        retry_at = now + delay
        retryable = policy.is_retryable(exc)
        info = error_info(exc, non_retryable=not retryable)
        over_total = (step.total_timeout is not None and cmd.first_started is not None
                      and retry_at > cmd.first_started + step.total_timeout)
        final = not retryable or policy.exhausted(attempt) or over_total
        if not inst.active or cmd.state != "running":
            inst.inflight -= 1
            return
        meta: dict[str, Any] = {"attempt": attempt, "duration": round(took, 6)}
        if final:
            if over_total and retryable and not policy.exhausted(attempt):
                info = ErrorInfo(type=info.type, message=f"{info.message} (total timeout of "
                                 f"{step.total_timeout:g}s reached)", traceback=info.traceback)
            kind = "step_failed"
        else:
            kind = "step_retrying"
            meta.update(retry_at=retry_at, first_started=cmd.first_started,
                        heartbeat=cmd.heartbeat)
        event = NewEvent(kind=kind, ts=now, op=cmd.op, name=step.name,
                         data=error_payload(info), meta=orjson.dumps(meta))
        ok = await self._append(inst, [event])
        inst.inflight -= 1
        if not ok:
            return
        inst.apply(kind, cmd.op, step.name, event.data, event.meta, now)
        if not final:
            log.info("step %s of %s failed (attempt %d): %s; retrying in %.2fs",
                     step.name, inst.workflow_id, attempt, info, delay)
            if delay <= 0:
                self._start_step(inst, cmd)
            else:
                self._add_wakeup(retry_at, inst.run_id)
        self._after(inst)

    async def _store_heartbeat(self, run_id: str, op: int, details: Any) -> None:
        try:
            await self.store.save_heartbeat(run_id, op, orjson.dumps(details),
                                            now=self.clock.now())
        except DuroError as exc:
            log.debug("heartbeat not saved: %s", exc)

    # -- timers ---------------------------------------------------------------------------------

    def _add_wakeup(self, at: float, run_id: str) -> None:
        self._wakeup_seq += 1
        heapq.heappush(self._wakeups, (at, self._wakeup_seq, run_id))
        if self._wakeups[0][2] == run_id:
            self._notify.set()

    def _fire_wakeups(self, now: float) -> None:
        due: list[str] = []
        while self._wakeups and self._wakeups[0][0] <= now:
            _, _, run_id = heapq.heappop(self._wakeups)
            if run_id not in due:
                due.append(run_id)
        for run_id in due:
            inst = self.active.get(run_id)
            if inst is None or inst.finishing:
                continue  # suspended or gone: the store's wake_at brings it back
            for cmd in inst.pending():
                if isinstance(cmd, TimerCommand):
                    if cmd.state == "pending" and cmd.fire_at <= now:
                        self._fire_timer(inst, cmd)
                elif cmd.state == "backoff" and (cmd.retry_at or 0) <= now:
                    self._start_step(inst, cmd)

    def _fire_timer(self, inst: RunInstance, cmd: TimerCommand) -> None:
        cmd.state = "firing"
        inst.inflight += 1
        self._spawn(self._record_timer(inst, cmd))

    async def _record_timer(self, inst: RunInstance, cmd: TimerCommand) -> None:
        event = NewEvent(kind="timer_fired", ts=self.clock.now(), op=cmd.op)
        ok = await self._append(inst, [event])
        inst.inflight -= 1
        if ok:
            cmd.state = "pending"  # apply() moves it to done (unless cancelled meanwhile)
            inst.apply("timer_fired", cmd.op, None, None, None, event.ts)
            self._after(inst)

    # -- after each activation -------------------------------------------------------------

    def _after_soon(self, inst: RunInstance) -> None:
        assert self.loop is not None
        self.loop.call_soon(self._after, inst)

    def _after(self, inst: RunInstance) -> None:
        """Decide what a run does next: park, finish, suspend, or keep going."""
        if not inst.active or inst.finishing or self.active.get(inst.run_id) is not inst:
            return
        if inst.park_error is not None:
            inst.finishing = True
            self._spawn(self._park(inst, inst.park_error))
            return
        main = inst.main
        if main is not None and main.done():
            inst.finishing = True
            self._spawn(self._finish(inst, main))
            return
        if inst.inflight == 0:
            inst.finishing = True
            self._spawn(self._suspend(inst))

    async def _park(self, inst: RunInstance, error: DuroError) -> None:
        log.error("parking run %s of %s: %s", inst.run_id, inst.workflow.name, error)
        payload = error_payload(ErrorInfo(type=type(error).__name__, message=str(error)))
        self._abandon_steps(inst)
        self.active.pop(inst.run_id, None)
        try:
            await self.store.park(inst.run_id, inst.epoch, error=payload,
                                  code_hash=inst.workflow.code_hash, now=self.clock.now())
        except DuroError as exc:
            log.warning("could not park run %s: %s", inst.run_id, exc)
        inst.close()
        self._wake_waiters(inst.run_id)

    async def _finish(self, inst: RunInstance, main: asyncio.Task[Any]) -> None:
        now = self.clock.now()
        result: bytes | None = None
        error: bytes | None = None
        if main.cancelled():
            status, kind = "cancelled", "run_cancelled"
            error = error_payload(ErrorInfo(type="CancelledError", message="cancelled"))
        else:
            exc = main.exception()
            if isinstance(exc, Park):  # pragma: no cover - park_error is set with Park
                return
            if exc is None:
                try:
                    result = encode(main.result(), what=f"the result of workflow "
                                                        f"{inst.workflow.name!r}")
                    status, kind = "completed", "run_completed"
                except SerializationError as ser:
                    exc = ser
            if exc is not None:
                if isinstance(exc, PayloadDecodeError):
                    inst.finishing = False
                    inst.park_error = exc
                    self._after(inst)
                    return
                status, kind = "failed", "run_failed"
                error = error_payload(error_info(exc))
        self._abandon_steps(inst)
        event = NewEvent(kind=kind, ts=now, data=result if status == "completed" else error)
        ok = await self._append(inst, [event], status=status, result=result, error=error,
                                release=True)
        if ok:
            self.active.pop(inst.run_id, None)
            inst.close()
            self._wake_waiters(inst.run_id)
            self._notify.set()

    async def _suspend(self, inst: RunInstance) -> None:
        wake_at = inst.next_wake()
        ok = await self._append(inst, [], status="suspended", wake_at=wake_at, release=True)
        if not ok:
            return
        self.active.pop(inst.run_id, None)
        inst.finishing = False
        self.cache[inst.run_id] = inst
        while len(self.cache) > self.max_cached:
            _, old = self.cache.popitem(last=False)
            old.close()
        self._notify.set()
