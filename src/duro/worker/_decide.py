"""What a held run does after each activation: fire its due timers, then keep going, stay
held in memory, suspend, finish, fail, park, time out or continue as new.

Functions over a :class:`~duro.worker._held.HeldRun` (its instance and bookkeeping),
through the :class:`Worker`'s public surface; and :class:`Flushes`, the queue of
outboxes waiting to be written alone."""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any

from duro._history import EventKind, TimerMeta
from duro._ids import new_id
from duro._waits import encode_waits
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
    StepCommand,
    TimerCommand,
)

if TYPE_CHECKING:
    from duro.worker._held import HeldRun
    from duro.worker._worker import Outcome, Worker

__all__ = ["Flushes", "after", "after_soon", "fire_timer", "fire_wakeups", "time_out"]

log = logging.getLogger("duro.worker")

# How long a fired timer's record may wait in the outbox for the run's next write (a
# step's outcome, usually) before it is written alone: long enough that a burst of
# timers does not write each record twice, short enough for the history to show it.
_FLUSH_DELAY = 1.0


# -- timers ----------------------------------------------------------------------------


def fire_wakeups(w: Worker, now: float) -> None:
    """Fire what is due in the runs whose wake-ups are due by ``now``."""
    for run_id in w.wakeups.pop_due(now):
        held = w.runs.active.get(run_id)
        if held is None or held.finishing:
            continue  # suspended or gone: the store's wake_at brings it back
        inst = held.inst
        if inst.deadline_at is not None and inst.deadline_at <= now:
            time_out(w, held)
            continue
        fire_due_timers(w, held, now)
        steps.awaiting_timed_out(w, held, now)
        for cmd in inst.pending():
            if isinstance(cmd, StepCommand) and cmd.state == "backoff" and (
                    cmd.retry_at or 0) <= now:
                steps.start_step(w, held, cmd)
        after(w, held)


def fire_due_timers(w: Worker, held: HeldRun, now: float) -> None:
    """Fire the run's timers due by ``now`` — unless a write of the run is in flight.

    Events are delivered in the order they are recorded, and a fired timer's record
    goes with the run's *next* write: firing one while a step's outcome (or a signal) is
    being committed would let the workflow see the timer first, live, and the outcome
    first, on replay, with its races decided the other way (seen: a step raced against
    a timeout, won by the timer live and by the step in replay). The timers then wait:
    :func:`after` fires them once the outcomes in flight have been delivered.
    """
    if held.writing:
        held.timers_deferred = True
        return
    for cmd in held.inst.pending():
        if isinstance(cmd, TimerCommand) and cmd.state == "pending" and cmd.fire_at <= now:
            fire_timer(w, held, cmd)


def fire_timer(w: Worker, held: HeldRun, cmd: TimerCommand) -> None:
    """Fire a due timer and let the workflow go on at once.

    ``timer_fired`` waits in the outbox and is written with the run's next write
    (before anything that follows it). Not waiting for that commit is safe: the
    event only records that a known instant has passed, so if it is lost with a
    crash, the replay finds the timer due again and fires it again, the same way;
    every outcome the workflow produces after it is written after it.
    """
    now = w.clock.now()
    # Its set and due times go with it: the event's own time says only when it fired.
    held.outbox.append(NewEvent(kind=EventKind.TIMER_FIRED, ts=now, op=cmd.op, meta=TimerMeta(
        set_at=cmd.set_at, due_at=cmd.fire_at).encode()))
    held.inst.apply(EventKind.TIMER_FIRED, cmd.op, None, None, None, now)


# -- after each activation --------------------------------------------------------------


def after_soon(w: Worker, held: HeldRun) -> None:
    assert w.loop is not None
    w.loop.call_soon(after, w, held)


def after(w: Worker, held: HeldRun) -> None:
    """Decide what a run does next: park, finish, suspend, or keep going."""
    inst = held.inst
    if (w.stopping or not inst.active or held.finishing
            or w.runs.active.get(held.run_id) is not held):
        # Stopping: stop() releases every run as it is. A step abandoned by the stop
        # looks cancelled here, and suspending would record the run with nothing to
        # wake it; racing the release, that left it stuck.
        return
    if held.timers_deferred and not held.writing and inst.park_error is None:
        held.timers_deferred = False
        fire_due_timers(w, held, w.clock.now())
    if inst.park_error is not None:
        held.finishing = True
        w.spawn(park(w, held, inst.park_error))
        return
    if inst.failure is not None:  # raised by a signal handler
        held.finishing = True
        w.spawn(fail(w, held, inst.failure))
        return
    main = inst.main
    if main is not None and main.done():
        held.finishing = True
        w.spawn(finish(w, held, main))
        return
    if held.history_len > w.history_limit:
        held.finishing = True
        w.spawn(fail(w, held, HistoryLimitError(
            f"run {held.run_id} has {held.history_len} history events, past the limit "
            f"of {w.history_limit}: use duro.continue_as_new() for long loops")))
        return
    if held.inflight == 0:
        if hold(w, held):
            if held.outbox:
                w.flushes.add(held)
            return
        held.finishing = True
        w.spawn(suspend(w, held))
    elif held.outbox:
        if all(e.kind == EventKind.TIMER_FIRED for e in held.outbox):
            # Usually written with the step's outcome in a moment; a long step
            # should not hide it from the history for long, though.
            w.flushes.add(held)
        else:
            # Published state and markers should not wait for a long step to finish.
            w.spawn(flush(w, held))


def hold(w: Worker, held: HeldRun) -> bool:
    """Keep a run that waits only for a timer due within the look-ahead in memory
    (it stays ``running``, its wake-up in this worker's heap) instead of writing
    it suspended and claiming and loading it again in a moment."""
    if w.lookahead <= 0 or w.draining or held.queue in w.limited_queues:
        return False
    wake = held.inst.next_wake()
    return wake is not None and wake - w.clock.now() <= w.lookahead


class Flushes:
    """Outboxes waiting to be written alone (fired timers' records, when no write of
    their run came within ``_FLUSH_DELAY``): one loop timer serves them all, in due
    order (they all wait the same delay)."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._queue: collections.deque[tuple[float, HeldRun]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def next_at(self) -> float | None:
        """The loop time of the next flush due."""
        return self._queue[0][0] if self._queue else None

    def add(self, held: HeldRun) -> None:
        """Write the run's outbox in ``_FLUSH_DELAY`` unless a write of the run takes it
        first (the usual case)."""
        if held.flush_pending:
            return
        held.flush_pending = True
        loop = self._worker.loop
        assert loop is not None
        # One loop timer for all pending flushes (a burst of timers arms one, not one per
        # run).
        self._queue.append((loop.time() + _FLUSH_DELAY, held))
        if self._timer is None:
            self._timer = loop.call_at(self._queue[0][0], self._due)

    def _due(self) -> None:
        self._timer = None
        w = self._worker
        # Not once stopping: stop() has stopped waiting for tasks, and a flush started now
        # would be left pending when the loop closes. What it would have written (fired
        # timers' records) is fired again on replay.
        if w.stopping:
            self._queue.clear()
            return
        assert w.loop is not None
        now, queue = w.loop.time(), self._queue
        while queue and queue[0][0] <= now:
            held = queue.popleft()[1]
            if held.outbox:
                w.spawn(flush(w, held))
            else:  # written with the run's next write meanwhile, the usual case
                held.flush_pending = False
        if queue:
            self._timer = w.loop.call_at(queue[0][0], self._due)


async def flush(w: Worker, held: HeldRun) -> None:
    held.flush_pending = False
    if not held.outbox or held.finishing or not w.runs.holds(held):
        return
    held.inflight += 1
    await held.append([])
    held.inflight -= 1
    after(w, held)


async def settle_messages(held: HeldRun, *, continuing: bool) -> None:
    """Before a run's end is written: let a read of its inbox that is under way finish
    (the messages it records must be counted below, not land after the end), then fail
    the updates that cannot count (see workflow/_messages.py)."""
    while held.inbox_read is not None:
        await asyncio.shield(held.inbox_read)
    inst = held.inst
    if running := inst.mailbox.handlers_running():
        log.warning("run %s of %s %s with %d signal or update handler(s) still running: "
                    "they do not count (await duro.wait_condition(duro.all_handlers_finished) "
                    "before the end)", held.run_id, inst.workflow.name,
                    "continued as new" if continuing else "ended", running)
    inst.mailbox.fail_unfinished(continuing=continuing)
    if not continuing and (left := inst.mailbox.unhandled_signals()):
        log.info("run %s of %s ended with %d signal(s) its code never took", held.run_id,
                 inst.workflow.name, left)


async def fail(w: Worker, held: HeldRun, exc: BaseException) -> None:
    steps.abandon_steps(held)
    await settle_messages(held, continuing=False)
    error = ErrorInfo.from_exception(exc).to_payload()
    event = NewEvent(kind=EventKind.RUN_FAILED, ts=w.clock.now(), data=error)
    if await held.append([event], status="failed", error=error, release=True):
        closed(w, held, ("failed", None, error))


def closed(w: Worker, held: HeldRun, outcome: Outcome | None = None, *,
           look: bool = False) -> None:
    """The run ended here (or moved on, continued as new): stop holding it, resolve its
    waiters, and have the main loop look at the store (``look``) if the end can have made
    work ready for this worker."""
    look = look or w.runs.room() <= 0 or concerns_others(w, held)
    w.runs.pop(held.run_id)
    held.close()
    w.wake_waiters(held.run_id, outcome)
    if look:
        w.wake()


def concerns_others(w: Worker, held: HeldRun) -> bool:
    """Whether a run's end can make other runs ready: a parent it tells (which then
    resumes), children its end cancels, or a slot in a queue with limits. Otherwise the
    end changes nothing the main loop would claim (a slot freed while there was room
    frees nothing), and looking at the store for it would only cost reads on the event
    loop, measured at ~40% of the next start's latency on SQLite (docs/benchmarks.md)."""
    inst = held.inst
    return (inst.parent_run_id is not None or inst.has_children
            or held.queue in w.limited_queues)


def time_out(w: Worker, held: HeldRun) -> None:
    held.finishing = True
    steps.abandon_steps(held)
    w.spawn(record_time_out(w, held))


async def record_time_out(w: Worker, held: HeldRun) -> None:
    now = w.clock.now()
    held.writing += 1  # the run's end, not committed yet: the worker is not idle
    try:
        await w.store.time_out(held.run_id, held.epoch, now=now)
    except DuroError as exc:
        log.warning("could not time out run %s: %s", held.run_id, exc)
    else:
        if w.observers:  # the store wrote the run's end itself
            held.observe([NewEvent(kind=EventKind.RUN_TIMED_OUT, ts=now)])
    finally:
        held.writing -= 1
    closed(w, held)


async def park(w: Worker, held: HeldRun, error: Exception) -> None:
    workflow = held.inst.workflow
    log.error("parking run %s of %s: %s", held.run_id, workflow.name, error)
    # A duro error says what is wrong; anything else is a bug: its traceback says where.
    info = ErrorInfo(type=type(error).__name__, message=str(error)) \
        if isinstance(error, DuroError) else ErrorInfo.from_exception(error)
    payload = info.to_payload()
    steps.abandon_steps(held)
    # Ours in the store until the parking commits: the worker's reconciliation must not
    # release it meanwhile (it would be claimed and run to the same failure again).
    w.parking.add(held.run_id)
    w.runs.discard(held)
    try:
        await w.store.park(held.run_id, held.epoch, error=payload,
                           code_hash=workflow.code_hash, now=w.clock.now())
    except Exception as exc:  # a broken store too: the run stays ours, never retried
        log.warning("could not park run %s: %s", held.run_id, exc)
    finally:
        w.parking.discard(held.run_id)
    held.close()
    w.wake_waiters(held.run_id)


async def finish(w: Worker, held: HeldRun, main: asyncio.Task[Any]) -> None:
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
            await continue_as_new(w, held, exc)
            return
        if exc is None:
            try:
                result = encode(main.result(), what=f"the result of workflow "
                                                    f"{held.inst.workflow.name!r}")
                status, kind = "completed", EventKind.RUN_COMPLETED
            except SerializationError as ser:
                exc = ser
        if exc is not None:
            if isinstance(exc, PayloadDecodeError):
                held.finishing = False
                held.inst.park(exc)
                after(w, held)
                return
            status, kind = "failed", EventKind.RUN_FAILED
            error = ErrorInfo.from_exception(exc).to_payload()
    steps.abandon_steps(held)
    await settle_messages(held, continuing=False)
    event = NewEvent(kind=kind, ts=now, data=result if status == "completed" else error)
    ok = await held.append([event], status=status, result=result, error=error,
                           release=True)
    if ok:
        closed(w, held, (status, result, error))


async def continue_as_new(w: Worker, held: HeldRun, cont: ContinueAsNew) -> None:
    now = w.clock.now()
    workflow = held.inst.workflow
    try:
        workflow.signature.bind(*cont.call_args, **cont.call_kwargs)
        payload = workflow.encode_input(
            cont.call_args, cont.call_kwargs,
            what=f"the arguments to continue {workflow.name!r} as new")
    except (TypeError, SerializationError) as exc:
        await fail(w, held, exc)
        return
    steps.abandon_steps(held)
    await settle_messages(held, continuing=True)
    with w.local_start(workflow.name, held.queue) as start:
        try:
            async with held.write_turn():
                seq, events = held.take(
                    [NewEvent(kind=EventKind.RUN_CONTINUED_AS_NEW, ts=now, data=payload)])
                carry = held.inst.mailbox.carried()
                if w.payloads.active:
                    events = await w.payloads.encode_events(events)
                    carry = await w.payloads.encode_messages(carry)
                held.writing += 1  # the run's last write: the worker is not idle
                try:
                    record = await w.store.continue_as_new(
                        held.run_id, held.epoch, seq, events, new_run_id=new_id(),
                        input=events[-1].data or payload,
                        owner=w.worker_id if start.local else None, now=now, carry=carry)
                except (Fenced, StoreError):
                    raise
                except Exception as exc:  # outside the store's contract: see HeldRun._write
                    held.park_unwritable(exc)
                    return
                finally:
                    held.writing -= 1
            if w.observers:
                held.observe(events)
            closed(w, held, look=True)  # its successor, when not adopted here, is claimed
            if start.local:
                links = RunLinks(parent_run_id=record.parent_run_id,
                                 parent_op=record.parent_op, deadline_at=record.deadline_at,
                                 headers=record.headers)
                start.adopt(Claim(run_id=record.run_id, workflow_id=record.workflow_id,
                                  workflow_name=record.workflow_name, epoch=record.epoch,
                                  history_len=1, queue=record.queue,
                                  namespace=record.namespace), payload, now, links=links)
                w.inbox_hint(record.run_id)  # messages carried over or moved to it
        except Fenced:
            w.drop(held)
        except Exception as exc:
            log.warning("could not continue run %s as new: %s", held.run_id, exc)
            w.drop(held)


async def suspend(w: Worker, held: HeldRun) -> None:
    inst = held.inst
    wake_at = inst.next_wake()
    # What only this worker knows (the history records a signal when it comes, not the
    # wait): the store keeps it with the suspension for handle.waiting() and the web UI.
    waits = encode_waits(
        signals=inst.mailbox.awaited(), handlers=inst.mailbox.signal_handlers,
        conditions=sum(1 for _, fut in inst.conditions if not fut.done()),
        timers=[(c.op, c.set_at, c.fire_at) for c in inst.timers.values()
                if c.state == "pending"])
    ok = await held.append([], status="suspended", wake_at=wake_at, release=True,
                           waits=waits)
    if not ok:
        return
    held.finishing = False
    w.runs.suspended(held)
    w.wakeups.compact(w.runs.active, len(w.runs.active))
    w.wake()
