"""What a held run does after each activation: fire its due timers, then keep going, stay
held in memory, suspend, finish, fail, park, time out or continue as new. Functions over
the :class:`Worker`'s state."""

from __future__ import annotations

import asyncio
import heapq
import logging
import uuid
from typing import TYPE_CHECKING, Any

from duro._history import EventKind
from duro.errors import (
    DuroError,
    ErrorInfo,
    HistoryLimitError,
    PayloadDecodeError,
    SerializationError,
    StoreError,
)
from duro.serde import encode
from duro.store import Claim, Fenced, NewEvent, RunLinks
from duro.worker import _local_steps as steps
from duro.workflow._instance import (
    ContinueAsNew,
    Park,
    RunInstance,
    StepCommand,
    TimerCommand,
)

if TYPE_CHECKING:
    from duro.worker._worker import Outcome, Worker

__all__ = ["add_wakeup", "after", "after_soon", "fire_timer", "fire_wakeups", "time_out"]

log = logging.getLogger("duro.worker")

# How long a fired timer's record may wait in the outbox for the run's next write (a
# step's outcome, usually) before it is written alone: long enough that a burst of
# timers does not write each record twice, short enough for the history to show it.
_FLUSH_DELAY = 1.0


# -- timers ----------------------------------------------------------------------------


def add_wakeup(w: Worker, at: float, run_id: str) -> None:
    w._wakeup_seq += 1
    heapq.heappush(w._wakeups, (at, w._wakeup_seq, run_id))
    if w._wakeups[0][2] == run_id:
        w._notify.set()  # an earlier wake-up: recompute the wait, no store look


def compact_wakeups(w: Worker) -> None:
    # Entries of runs no longer held stay in the heap until due (the store's wake_at
    # brings those runs back); with many sleeping runs they would hold memory for
    # each, so drop them once they outnumber the live ones. Held runs can have
    # several entries each (a timer, a deadline, a retry): then the heap may stay
    # above that bound after a rebuild, and rebuilding again on every suspension
    # would be quadratic, so wait for 1,024 new entries first (unless none is live).
    n = len(w._wakeups)
    if n <= 2 * len(w.active) + 1024:
        return
    if w.active and n <= w._wakeups_kept + 1024:
        return
    w._wakeups = [entry for entry in w._wakeups if entry[2] in w.active]
    heapq.heapify(w._wakeups)
    w._wakeups_kept = len(w._wakeups)


def fire_wakeups(w: Worker, now: float) -> None:
    due: dict[str, None] = {}  # in order, once each
    while w._wakeups and w._wakeups[0][0] <= now:
        due[heapq.heappop(w._wakeups)[2]] = None
    for run_id in due:
        inst = w.active.get(run_id)
        if inst is None or inst.finishing:
            continue  # suspended or gone: the store's wake_at brings it back
        if inst.deadline_at is not None and inst.deadline_at <= now:
            time_out(w, inst)
            continue
        fire_due_timers(w, inst, now)
        for cmd in inst.pending():
            if isinstance(cmd, StepCommand) and cmd.state == "backoff" and (
                    cmd.retry_at or 0) <= now:
                steps.start_step(w, inst, cmd)
        after(w, inst)


def fire_due_timers(w: Worker, inst: RunInstance, now: float) -> None:
    """Fire the run's timers due by ``now`` — unless a write of the run is in flight.

    Events are delivered in the order they are recorded, and a fired timer's record
    goes with the run's *next* write: firing one while a step's outcome (or a signal) is
    being committed would let the workflow see the timer first, live, and the outcome
    first, on replay, with its races decided the other way (seen: a step raced against
    a timeout, won by the timer live and by the step in replay). The timers then wait:
    :func:`after` fires them once the outcomes in flight have been delivered.
    """
    if inst.writing:
        inst.timers_deferred = True
        return
    for cmd in inst.pending():
        if isinstance(cmd, TimerCommand) and cmd.state == "pending" and cmd.fire_at <= now:
            fire_timer(w, inst, cmd)


def fire_timer(w: Worker, inst: RunInstance, cmd: TimerCommand) -> None:
    """Fire a due timer and let the workflow go on at once.

    ``timer_fired`` waits in the outbox and is written with the run's next write
    (before anything that follows it). Not waiting for that commit is safe: the
    event only records that a known instant has passed, so if it is lost with a
    crash, the replay finds the timer due again and fires it again, the same way;
    every outcome the workflow produces after it is written after it.
    """
    now = w.clock.now()
    inst.outbox.append(NewEvent(kind=EventKind.TIMER_FIRED, ts=now, op=cmd.op))
    inst.apply(EventKind.TIMER_FIRED, cmd.op, None, None, None, now)


# -- after each activation --------------------------------------------------------------


def after_soon(w: Worker, inst: RunInstance) -> None:
    assert w.loop is not None
    w.loop.call_soon(after, w, inst)


def after(w: Worker, inst: RunInstance) -> None:
    """Decide what a run does next: park, finish, suspend, or keep going."""
    if (w._stopping or not inst.active or inst.finishing
            or w.active.get(inst.run_id) is not inst):
        # Stopping: stop() releases every run as it is. A step abandoned by the stop
        # looks cancelled here, and suspending would record the run with nothing to
        # wake it; racing the release, that left it stuck.
        return
    if inst.timers_deferred and not inst.writing and inst.park_error is None:
        inst.timers_deferred = False
        fire_due_timers(w, inst, w.clock.now())
    if inst.park_error is not None:
        inst.finishing = True
        w._spawn(park(w, inst, inst.park_error))
        return
    if inst.failure is not None:  # raised by a signal handler
        inst.finishing = True
        w._spawn(fail(w, inst, inst.failure))
        return
    main = inst.main
    if main is not None and main.done():
        inst.finishing = True
        w._spawn(finish(w, inst, main))
        return
    if inst.history_len > w.history_limit:
        inst.finishing = True
        w._spawn(fail(w, inst, HistoryLimitError(
            f"run {inst.run_id} has {inst.history_len} history events, past the limit "
            f"of {w.history_limit}: use duro.continue_as_new() for long loops")))
        return
    if inst.inflight == 0:
        if hold(w, inst):
            if inst.outbox:
                flush_soon(w, inst)
            return
        inst.finishing = True
        w._spawn(suspend(w, inst))
    elif inst.outbox:
        if all(e.kind == EventKind.TIMER_FIRED for e in inst.outbox):
            # Usually written with the step's outcome in a moment; a long step
            # should not hide it from the history for long, though.
            flush_soon(w, inst)
        else:
            # Published state and markers should not wait for a long step to finish.
            w._spawn(flush(w, inst))


def hold(w: Worker, inst: RunInstance) -> bool:
    """Keep a run that waits only for a timer due within the look-ahead in memory
    (it stays ``running``, its wake-up in this worker's heap) instead of writing
    it suspended and claiming and loading it again in a moment."""
    if w.lookahead <= 0 or w.draining or inst.queue in w.limited_queues:
        return False
    wake = inst.next_wake()
    return wake is not None and wake - w.clock.now() <= w.lookahead


def flush_soon(w: Worker, inst: RunInstance) -> None:
    if inst.flush_pending:
        return
    inst.flush_pending = True
    assert w.loop is not None
    # One loop timer for all pending flushes (a burst of timers arms one, not one per
    # run): they all wait the same delay, so the queue is in due order.
    w._flushes.append((w.loop.time() + _FLUSH_DELAY, inst))
    if w._flush_timer is None:
        w._flush_timer = w.loop.call_at(w._flushes[0][0], flush_due, w)


def flush_due(w: Worker) -> None:
    w._flush_timer = None
    # Not once stopping: stop() has stopped waiting for tasks, and a flush started now
    # would be left pending when the loop closes. What it would have written (fired
    # timers' records) is fired again on replay.
    if w._stopping:
        w._flushes.clear()
        return
    assert w.loop is not None
    now, queue = w.loop.time(), w._flushes
    while queue and queue[0][0] <= now:
        inst = queue.popleft()[1]
        if inst.outbox:
            w._spawn(flush(w, inst))
        else:  # written with the run's next write meanwhile, the usual case
            inst.flush_pending = False
    if queue:
        w._flush_timer = w.loop.call_at(queue[0][0], flush_due, w)


async def flush(w: Worker, inst: RunInstance) -> None:
    inst.flush_pending = False
    if not inst.outbox or inst.finishing or w.active.get(inst.run_id) is not inst:
        return
    inst.inflight += 1
    await w._append(inst, [])
    inst.inflight -= 1
    after(w, inst)


async def settle_messages(inst: RunInstance, *, continuing: bool) -> None:
    """Before a run's end is written: let a read of its inbox that is under way finish
    (the messages it records must be counted below, not land after the end), then fail
    the updates that cannot count (see workflow/_messages.py)."""
    while inst.inbox_read is not None:
        await asyncio.shield(inst.inbox_read)
    inst.mailbox.fail_unfinished(continuing=continuing)
    if not continuing and (left := inst.mailbox.unhandled_signals()):
        log.info("run %s of %s ended with %d signal(s) its code never took", inst.run_id,
                 inst.workflow.name, left)


async def fail(w: Worker, inst: RunInstance, exc: BaseException) -> None:
    steps.abandon_steps(w, inst)
    await settle_messages(inst, continuing=False)
    error = ErrorInfo.from_exception(exc).to_payload()
    event = NewEvent(kind=EventKind.RUN_FAILED, ts=w.clock.now(), data=error)
    if await w._append(inst, [event], status="failed", error=error, release=True):
        closed(w, inst, ("failed", None, error))


def closed(w: Worker, inst: RunInstance, outcome: Outcome | None = None) -> None:
    w.active.pop(inst.run_id, None)
    inst.close()
    w._wake_waiters(inst.run_id, outcome)
    w._poke()


def time_out(w: Worker, inst: RunInstance) -> None:
    inst.finishing = True
    steps.abandon_steps(w, inst)
    w._spawn(record_time_out(w, inst))


async def record_time_out(w: Worker, inst: RunInstance) -> None:
    try:
        await w.store.time_out(inst.run_id, inst.epoch, now=w.clock.now())
    except DuroError as exc:
        log.warning("could not time out run %s: %s", inst.run_id, exc)
    closed(w, inst)


async def park(w: Worker, inst: RunInstance, error: Exception) -> None:
    log.error("parking run %s of %s: %s", inst.run_id, inst.workflow.name, error)
    # A duro error says what is wrong; anything else is a bug: its traceback says where.
    info = ErrorInfo(type=type(error).__name__, message=str(error)) \
        if isinstance(error, DuroError) else ErrorInfo.from_exception(error)
    payload = info.to_payload()
    steps.abandon_steps(w, inst)
    w.active.pop(inst.run_id, None)
    try:
        await w.store.park(inst.run_id, inst.epoch, error=payload,
                           code_hash=inst.workflow.code_hash, now=w.clock.now())
    except Exception as exc:  # a broken store too: the run stays ours, never retried
        log.warning("could not park run %s: %s", inst.run_id, exc)
    inst.close()
    w._wake_waiters(inst.run_id)


async def finish(w: Worker, inst: RunInstance, main: asyncio.Task[Any]) -> None:
    now = w.clock.now()
    result: bytes | None = None
    error: bytes | None = None
    if main.cancelled():
        status, kind = "cancelled", EventKind.RUN_CANCELLED
        error = ErrorInfo(type="CancelledError", message="cancelled").to_payload()
    else:
        exc = main.exception()
        if isinstance(exc, Park):  # pragma: no cover - park_error is set with Park
            return
        if isinstance(exc, ContinueAsNew):
            await continue_as_new(w, inst, exc)
            return
        if exc is None:
            try:
                result = encode(main.result(), what=f"the result of workflow "
                                                    f"{inst.workflow.name!r}")
                status, kind = "completed", EventKind.RUN_COMPLETED
            except SerializationError as ser:
                exc = ser
        if exc is not None:
            if isinstance(exc, PayloadDecodeError):
                inst.finishing = False
                inst.park_error = exc
                after(w, inst)
                return
            status, kind = "failed", EventKind.RUN_FAILED
            error = ErrorInfo.from_exception(exc).to_payload()
    steps.abandon_steps(w, inst)
    await settle_messages(inst, continuing=False)
    event = NewEvent(kind=kind, ts=now, data=result if status == "completed" else error)
    ok = await w._append(inst, [event], status=status, result=result, error=error,
                         release=True)
    if ok:
        closed(w, inst, (status, result, error))


async def continue_as_new(w: Worker, inst: RunInstance, cont: ContinueAsNew) -> None:
    now = w.clock.now()
    try:
        inst.workflow.signature.bind(*cont.call_args, **cont.call_kwargs)
        payload = inst.workflow.encode_input(
            cont.call_args, cont.call_kwargs,
            what=f"the arguments to continue {inst.workflow.name!r} as new")
    except (TypeError, SerializationError) as exc:
        await fail(w, inst, exc)
        return
    steps.abandon_steps(w, inst)
    await settle_messages(inst, continuing=True)
    local = w.reserve_slot(inst.workflow.name, inst.queue)
    adopted = False
    try:
        async with w.write_turn(inst):
            events = [*inst.outbox,
                      NewEvent(kind=EventKind.RUN_CONTINUED_AS_NEW, ts=now, data=payload)]
            inst.outbox = []
            seq = inst.history_len
            inst.history_len += len(events)
            carry = inst.mailbox.carried()
            if w.payloads.active:
                events = await w.payloads.encode_events(events)
                carry = await w.payloads.encode_messages(carry)
            try:
                record = await w.store.continue_as_new(
                    inst.run_id, inst.epoch, seq, events, new_run_id=str(uuid.uuid4()),
                    input=events[-1].data or payload, owner=w.worker_id if local else None,
                    now=now, carry=carry)
            except (Fenced, StoreError):
                raise
            except Exception as exc:  # outside the store's contract: see Worker._append
                w.park_unwritable(inst, exc)
                return
        closed(w, inst)
        if local:
            adopted = True
            links = RunLinks(parent_run_id=record.parent_run_id,
                             parent_op=record.parent_op, deadline_at=record.deadline_at)
            w.adopt(Claim(run_id=record.run_id, workflow_id=record.workflow_id,
                          workflow_name=record.workflow_name, epoch=record.epoch,
                          history_len=1, queue=record.queue), payload, now,
                    links=links)
            w.inbox_hint(record.run_id)  # messages carried over or moved to it
    except Fenced:
        w._drop(inst)
    except Exception as exc:
        log.warning("could not continue run %s as new: %s", inst.run_id, exc)
        w._drop(inst)
    finally:
        if local and not adopted:
            w.unreserve_slot()


async def suspend(w: Worker, inst: RunInstance) -> None:
    wake_at = inst.next_wake()
    ok = await w._append(inst, [], status="suspended", wake_at=wake_at, release=True)
    if not ok:
        return
    w.active.pop(inst.run_id, None)
    inst.finishing = False
    compact_wakeups(w)
    w.cache[inst.run_id] = inst
    while len(w.cache) > w.max_cached:
        _, old = w.cache.popitem(last=False)
        old.close()
    w._poke()
