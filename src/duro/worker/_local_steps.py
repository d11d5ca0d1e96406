"""Running a held run's steps: in this process (async steps on the loop, sync steps in
the worker's thread pool), or handed to the workers of a step queue; and recording each
attempt's outcome in the run's history. Functions over a held run (its step commands and
bookkeeping), through the :class:`Worker`'s public surface."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson

from duro._history import AttemptMeta, BudgetCharge, EventKind, RetryMeta
from duro._messages import TaskDone
from duro.errors import DuroError, ErrorInfo, StepOutcomeUnknownError, StepTimeoutError
from duro.step._step import CompleteLater, StepInfo, waiting
from duro.store import NewEvent
from duro.store._records import TaskRecord
from duro.worker import _budgets as budgets
from duro.worker import _cache as cache
from duro.worker import _decide as decide
from duro.worker._steps import cancelled_here, run_attempt
from duro.workflow._instance import StepCommand

if TYPE_CHECKING:
    from duro.worker._held import HeldRun
    from duro.worker._worker import Worker

__all__ = ["abandon_steps", "interrupt_waits", "start_step", "task_event"]

log = logging.getLogger("duro.worker")

_NO_HEADERS: MappingProxyType[str, str] = MappingProxyType({})


def start_step(w: Worker, held: HeldRun, cmd: StepCommand) -> None:
    if w.draining:
        return  # left unstarted: the run suspends, due now, for another worker
    if cmd.step.queue is not None:
        enqueue(w, held, cmd)
        return
    cmd.state = "running"
    held.inflight += 1
    assert w.loop is not None
    # In the worker's context (Worker.spawn says why).
    cmd.task = w.loop.create_task(run_step(w, held, cmd), context=w.context.copy())


def abandon_steps(held: HeldRun) -> None:
    """Cancel the run's step attempts running here."""
    for cmd in held.inst.commands.values():
        if isinstance(cmd, StepCommand) and cmd.task is not None and not cmd.task.done():
            cmd.task.cancel()


def interrupt_waits(held: HeldRun) -> None:
    """Draining: cancel the run's attempts that only wait now (``interruptible``: a
    long poll), as attempts not started: the run suspends due at once, and its next
    worker runs the step again. Never one writing its outcome (it is past the wait)."""
    for cmd in held.inst.commands.values():
        if (isinstance(cmd, StepCommand) and cmd.state == "running"
                and cmd.task is not None and not cmd.task.done() and waiting(cmd.task)):
            cmd.state = "new"
            cmd.task.cancel()


async def run_step(w: Worker, held: HeldRun, cmd: StepCommand) -> None:
    step = cmd.step
    attempt = cmd.attempts + 1
    if step.cache is not None and await cached(w, held, cmd, attempt, "running"):
        return
    charges: tuple[BudgetCharge, ...] = ()
    if step.budgeted and held.inst.budgets:
        admitted = await budgets.admit(w, held, cmd, attempt)
        if admitted is None:
            return  # waiting, paused or refused (recorded)
        charges, requests = admitted
        task = cmd.task
        if requests and task is not None:
            # An attempt that ends without an outcome recorded (abandoned, cancelled)
            # releases its reservation; a recorded outcome released it with its spend.
            task.add_done_callback(
                lambda t: None if cmd.task is not t or cmd.state in ("done", "backoff")
                else w.spawn(budgets.release(w, held, cmd.op, requests)))
    if step.at_most_once and not await record_start(w, held, cmd, attempt):
        return
    now = w.clock.now()
    if cmd.first_started is None:
        cmd.first_started = now
    assert w.loop is not None
    deadline = None
    if step.timeout is not None:
        deadline = w.loop.time() + step.timeout
    if step.total_timeout is not None:
        left = cmd.first_started + step.total_timeout - now
        total = w.loop.time() + max(0.0, left)
        deadline = total if deadline is None else min(deadline, total)
    inst = held.inst
    run_id = held.run_id
    info = StepInfo(workflow_id=inst.workflow_id, run_id=run_id, step=step.name,
                    seq=cmd.op, attempt=attempt, idempotency_key=f"{run_id}:{cmd.op}",
                    heartbeat_details=cmd.heartbeat, deadline=deadline,
                    headers=inst.headers or _NO_HEADERS, queue=held.queue,
                    workflow=inst.workflow.name)
    started = time.perf_counter()
    w.steps_executed += 1
    try:
        data = await run_attempt(
            cmd, info, w.executor, deadline,
            lambda c: w.spawn(store_heartbeat(w, run_id, c.op, c.heartbeat)),
            w.step_hooks, w.streams, w.attempt_hooks)
    except BaseException as exc:  # the step's code may raise anything
        if cancelled_here(exc):
            info.cancelled = True
            if cmd.state == "running":
                cmd.state = "cancelled"
            held.inflight -= 1
            decide.after_soon(w, held)
            return
        if isinstance(exc, CompleteLater):
            await awaiting(w, held, cmd, attempt)
            return
        if step.at_most_once and isinstance(exc, StepTimeoutError):
            # Abandoned mid-way (a sync step's thread may even go on): whether it took
            # effect is unknown, and another attempt could do it twice.
            await record_start(w, held, cmd, attempt)
            return
        await step_failed(w, held, cmd, attempt, exc, time.perf_counter() - started,
                          info._usage, charges)
        return
    took = time.perf_counter() - started
    if step.cache is not None:
        await completed_cached(w, held, cmd, attempt, data, took, info._usage, charges)
        return
    if not inst.active or cmd.state != "running":
        held.inflight -= 1
        return
    meta = AttemptMeta.encode(attempt, took, usage=info._usage, charges=charges)
    event = NewEvent(kind=EventKind.STEP_COMPLETED, ts=w.clock.now(), op=cmd.op, name=step.name,
                     data=data, meta=meta)
    try:  # HeldRun.write_attempt, inline: every step's outcome (no coroutine more)
        ok = await held.append([event])
    except asyncio.CancelledError:
        held.given_back()
        raise
    held.inflight -= 1
    if ok:
        inst.apply(EventKind.STEP_COMPLETED, cmd.op, step.name, data, meta, event.ts)
        decide.after(w, held)


async def cached(w: Worker, held: HeldRun, cmd: StepCommand, attempt: int,
                 state: str) -> bool:
    """Before an attempt of a cached step (``state``: the command's while it runs here,
    or while it is being queued): True when it is settled without running, by a hit
    (recorded as the step's ``step_completed``), or by a key that cannot be made (the
    attempt failed so); False: run it."""
    if cmd.cache_key is None:
        try:
            cmd.cache_key = cache.key_for(held, cmd) or False  # False: no scope, no cache
        except Exception as exc:  # the arguments, or the scope function
            await step_failed(w, held, cmd, attempt, exc, 0.0, state=state)
            return True
    if not isinstance(cmd.cache_key, cache.CacheKey):
        return False
    try:
        entry = await cache.find(w, cmd.cache_key)
        if entry is None:
            return False
        plain = await w.payloads.decode(entry.result)
    except asyncio.CancelledError:  # abandoned while looking (as an attempt would be)
        if cmd.state == "running":
            cmd.state = "cancelled"
        held.inflight -= 1
        decide.after_soon(w, held)
        return True
    except Exception as exc:  # written under a codec this worker lacks: run the step
        log.warning("step %s: its cached result cannot be decoded here (%s); it runs",
                    cmd.step.name, exc)
        return False
    inst = held.inst
    if not inst.active or cmd.state != state:
        held.inflight -= 1
        return True
    # The cached bytes as they are (the stored form: the history gets what the cache
    # holds); the workflow gets their JSON.
    meta = AttemptMeta.encode_hit(attempt, entry.run_id)
    event = NewEvent(kind=EventKind.STEP_COMPLETED, ts=w.clock.now(), op=cmd.op,
                     name=cmd.step.name, data=entry.result, meta=meta)
    ok = await held.write_attempt([event])
    if ok:
        inst.apply(EventKind.STEP_COMPLETED, cmd.op, cmd.step.name, plain, meta, event.ts)
        decide.after(w, held)
    return True


async def completed_cached(w: Worker, held: HeldRun, cmd: StepCommand, attempt: int,
                           data: bytes, took: float,
                           usage: Sequence[Mapping[str, Any]] | None,
                           charges: tuple[BudgetCharge, ...] = ()) -> None:
    """Record a cached step's success, then store it in the cache (before the workflow
    goes on: once a run is past the step, its entry is there). Both get the same stored
    bytes, encoded once."""
    key = cmd.cache_key
    stored: bytes | None = data
    if isinstance(key, cache.CacheKey) and w.payloads.active:
        try:
            stored = await w.payloads.encode(data)
        except asyncio.CancelledError:  # the step cancelled meanwhile (a codec awaits)
            held.given_back()
            raise
        except Exception as exc:  # the append encodes (and fails, or not) on its own
            log.warning("step %s: its result could not be encoded for the cache: %s",
                        cmd.step.name, exc)
            stored = None
    inst = held.inst
    if not inst.active or cmd.state != "running":
        held.inflight -= 1
        return
    meta = AttemptMeta.encode(attempt, took, usage=usage, charges=charges)
    event = NewEvent(kind=EventKind.STEP_COMPLETED, ts=w.clock.now(), op=cmd.op,
                     name=cmd.step.name, data=stored or data, meta=meta)
    try:
        ok = await held.append([event])
        if ok and isinstance(key, cache.CacheKey):
            # Still in flight meanwhile: the outcome is applied after (write_attempt).
            await cache.remember(w, key, cmd.step.name, stored, held.run_id)
    except asyncio.CancelledError:
        held.given_back()
        raise
    held.inflight -= 1
    if ok and inst.active:
        inst.apply(EventKind.STEP_COMPLETED, cmd.op, cmd.step.name, data, meta, event.ts)
        decide.after(w, held)


async def awaiting(w: Worker, held: HeldRun, cmd: StepCommand, attempt: int) -> None:
    """The attempt called ``duro.complete_later()``: record that it waits for its outcome
    from outside (``step_started``, awaiting), so that a restart waits on instead of
    running it again; the outcome comes as a ``task_done`` message (``client.steps``)."""
    now = w.clock.now()
    step, deadline = cmd.step, None
    if step.timeout is not None:
        deadline = now + step.timeout
    if step.total_timeout is not None and cmd.first_started is not None:
        total = cmd.first_started + step.total_timeout
        deadline = total if deadline is None else min(deadline, total)
    event = NewEvent(kind=EventKind.STEP_STARTED, ts=now, op=cmd.op, name=step.name,
                     meta=AttemptMeta.encode_awaiting(attempt, deadline))
    ok = await held.write_attempt([event])
    if ok and held.inst.active:
        held.inst.apply(event.kind, cmd.op, cmd.step.name, None, event.meta, event.ts)
        if deadline is not None:
            w.wakeups.add(deadline, held.run_id)
        decide.after(w, held)


def awaiting_timed_out(w: Worker, held: HeldRun, now: float) -> None:
    """Fail the attempts completed from outside whose wait is past its timeout (their
    retry policy decides what follows, as for an attempt that ran too long here)."""
    for cmd in held.inst.pending():
        if (isinstance(cmd, StepCommand) and cmd.state == "remote"
                and cmd.awaiting_until is not None and cmd.awaiting_until <= now):
            cmd.awaiting_until = None  # once
            held.inflight += 1
            error = StepTimeoutError(f"step {cmd.step.name!r} was not completed from "
                                     f"outside within its timeout")
            w.spawn(step_failed(w, held, cmd, cmd.attempts + 1, error, 0.0, state="remote"))


async def record_start(w: Worker, held: HeldRun, cmd: StepCommand, attempt: int) -> bool:
    """Before an at-most-once step's attempt runs, commit its start (``step_started``);
    True when the attempt may run now.

    If the history already records this attempt's start, a worker ran it (or was about
    to) and was lost before its outcome, or it timed out: it is not run again, and
    ``step_failed`` with an unknown outcome is recorded instead (the workflow gets
    ``StepOutcomeUnknownError``). Either way the step's outcome event, unique per op in
    the store, stays the one arbiter: a stale worker's write is fenced off.
    """
    inst = held.inst
    if cmd.started == attempt:
        info = ErrorInfo(type=_UNKNOWN_TYPE, non_retryable=True,
                         message=f"attempt {attempt} started and its outcome is unknown")
        event = NewEvent(kind=EventKind.STEP_FAILED, ts=w.clock.now(), op=cmd.op,
                         name=cmd.step.name, data=info.to_payload(),
                         meta=AttemptMeta.encode_unknown(attempt))
    else:
        event = NewEvent(kind=EventKind.STEP_STARTED, ts=w.clock.now(), op=cmd.op,
                         name=cmd.step.name, meta=AttemptMeta.encode_started(attempt))
    cancelled = False
    try:
        ok = await held.append([event])
    except asyncio.CancelledError:
        # Abandoned meanwhile (the workflow cancelled the step, or the run is ending):
        # not run; the run looks again at what to do (it may suspend now).
        ok, cancelled = False, True
    if ok and inst.active:
        inst.apply(event.kind, cmd.op, cmd.step.name, event.data, event.meta, event.ts)
        if event.kind == EventKind.STEP_STARTED and cmd.state == "running":
            return True
    if cancelled:
        held.given_back()
        return False
    if not ok or not inst.active or event.kind == EventKind.STEP_STARTED:
        held.inflight -= 1  # not run: lost the run, or the step cancelled as it applied
        if ok and inst.active:
            decide.after_soon(w, held)
        return False
    held.inflight -= 1
    decide.after(w, held)
    return False


_UNKNOWN_TYPE = f"{StepOutcomeUnknownError.__module__}.{StepOutcomeUnknownError.__qualname__}"


def failure_event(
    w: Worker, cmd: StepCommand, attempt: int, info: ErrorInfo, *, retryable: bool,
    retry_after: float | None, took: float, heartbeat: Any,
    usage: Sequence[Mapping[str, Any]] | None, charges: tuple[BudgetCharge, ...] = (),
) -> tuple[NewEvent, bool, float]:
    """How a failed attempt is recorded: ``step_retrying`` (with when to retry) or, when
    the policy says so, ``step_failed``. Returns (event, final, retry delay)."""
    step = cmd.step
    policy = step.retry
    now = w.clock.now()
    delay = float(retry_after) if retry_after is not None else policy.delay(attempt)
    retry_at = now + delay
    over_total = (step.total_timeout is not None and cmd.first_started is not None
                  and retry_at > cmd.first_started + step.total_timeout)
    final = not retryable or policy.exhausted(attempt) or over_total
    if final:
        if over_total and retryable and not policy.exhausted(attempt):
            info = dataclasses.replace(info, message=f"{info.message} (total timeout of "
                                       f"{step.total_timeout:g}s reached)")
        kind = EventKind.STEP_FAILED
        meta = AttemptMeta.encode(attempt, took, usage=usage, charges=charges)
    else:
        kind = EventKind.STEP_RETRYING
        meta = RetryMeta(attempt=attempt, duration=took, retry_at=retry_at,
                         first_started=cmd.first_started, heartbeat=heartbeat,
                         usage=tuple(usage or ()), charges=charges).encode()
    event = NewEvent(kind=kind, ts=now, op=cmd.op, name=step.name,
                     data=info.to_payload(), meta=meta)
    return event, final, delay


async def step_failed(
    w: Worker, held: HeldRun, cmd: StepCommand, attempt: int, exc: BaseException,
    took: float, usage: Sequence[Mapping[str, Any]] | None = None,
    charges: tuple[BudgetCharge, ...] = (), *, state: str = "running",
) -> None:
    inst = held.inst
    if not inst.active or cmd.state != state:
        held.inflight -= 1
        return
    retryable = cmd.step.retry.is_retryable(exc)
    info = ErrorInfo.from_exception(exc, non_retryable=not retryable)
    event, final, delay = failure_event(
        w, cmd, attempt, info, retryable=retryable,
        retry_after=getattr(exc, "retry_after", None), took=took, heartbeat=cmd.heartbeat,
        usage=usage, charges=charges)
    ok = await held.write_attempt([event])
    if not ok:
        return
    inst.apply(event.kind, cmd.op, cmd.step.name, event.data, event.meta, event.ts)
    if not final:
        log.info("step %s of %s failed (attempt %d): %s; retrying in %.2fs",
                 cmd.step.name, inst.workflow_id, attempt, info, delay)
        if delay <= 0:
            start_step(w, held, cmd)
        else:
            w.wakeups.add(event.ts + delay, held.run_id)
    decide.after(w, held)


def enqueue(w: Worker, held: HeldRun, cmd: StepCommand) -> None:
    """Hand a step attempt to the workers of its queue; the run waits meanwhile."""
    cmd.state = "remote"
    if cmd.first_started is None:
        cmd.first_started = w.clock.now()
    attempt = cmd.attempts + 1
    run_id = held.run_id
    raw: dict[str, Any] = {"workflow_id": held.inst.workflow_id, "heartbeat": cmd.heartbeat,
                           "workflow": held.inst.workflow.name}
    if held.inst.headers:
        raw["headers"] = held.inst.headers  # the worker that runs it gives them to the step
    info = orjson.dumps(raw)
    task = TaskRecord(task_id=f"{run_id}:{cmd.op}:{attempt}", run_id=run_id,
                      op=cmd.op, attempt=attempt, step=cmd.step.name,
                      queue=cmd.step.queue or "default", args=cmd.payload, info=info)
    if cmd.step.cache is not None:
        held.inflight += 1  # held (not suspended) while the cache is looked up
        w.spawn(enqueue_cached(w, held, cmd, task))
        return
    w.spawn(store_task(w, task))


async def enqueue_cached(w: Worker, held: HeldRun, cmd: StepCommand, task: TaskRecord) -> None:
    """A cached step routed to a queue: looked up first; queued on a miss."""
    if await cached(w, held, cmd, task.attempt, "remote"):
        return
    held.inflight -= 1
    if held.inst.active and cmd.state == "remote":
        await store_task(w, task)
    decide.after_soon(w, held)  # nothing in flight now: the run may suspend


async def store_task(w: Worker, task: TaskRecord) -> None:
    try:
        if w.payloads.active:
            task = dataclasses.replace(task, args=await w.payloads.encode(task.args))
        await w.store.enqueue_task(task, now=w.clock.now())
    except DuroError as exc:
        log.warning("could not queue step %s of run %s: %s", task.step, task.run_id, exc)
        return
    w.wake()  # this worker may serve that queue itself


def task_event(w: Worker, held: HeldRun, op: int, data: bytes | None,
               meta: bytes | None) -> NewEvent | None:
    """The history event for a task's outcome (a ``task_done`` message: its result or
    error in ``data``, :class:`TaskDone` in ``meta``), or None if it is stale."""
    cmd = held.inst.commands.get(op)
    done, data = _task_done(data, meta)
    if (not isinstance(cmd, StepCommand) or cmd.state != "remote"
            or done.attempt != cmd.attempts + 1):
        return None  # cancelled meanwhile, or an outcome already recorded
    if done.completed:
        return NewEvent(kind=EventKind.STEP_COMPLETED, ts=w.clock.now(), op=op,
                        name=cmd.step.name, data=data,
                        meta=AttemptMeta.encode(done.attempt, done.duration,
                                                cmd.step.queue or "default", done.usage))
    event, _, _ = failure_event(
        w, cmd, done.attempt, ErrorInfo.from_payload(data),
        retryable=not done.non_retryable, retry_after=done.retry_after, took=done.duration,
        heartbeat=done.heartbeat, usage=done.usage)
    return event


def _task_done(data: bytes | None, meta: bytes | None) -> tuple[TaskDone, bytes | None]:
    """A task outcome (also in the format stored before migration 6: one JSON object
    with the result or error inside)."""
    if meta is not None or not data:
        return TaskDone.decode(meta), data
    raw = orjson.loads(data)
    completed = raw.get("status") == "completed"
    done = TaskDone(attempt=int(raw.get("attempt", 0)),
                    duration=float(raw.get("duration") or 0.0), completed=completed,
                    heartbeat=raw.get("heartbeat"),
                    non_retryable=bool(raw.get("non_retryable")),
                    retry_after=raw.get("retry_after"))
    return done, orjson.dumps(raw.get("result") if completed else raw.get("error") or {})


async def store_heartbeat(w: Worker, run_id: str, op: int, details: Any) -> None:
    try:
        await w.store.save_heartbeat(run_id, op, orjson.dumps(details),
                                     now=w.clock.now())
    except DuroError as exc:
        log.debug("heartbeat not saved: %s", exc)
