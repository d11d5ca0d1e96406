"""Messages for held runs: reading a run's inbox and recording what is there in its
history (signals, update requests that pass their validator, cancel requests, children's
ends, step tasks' outcomes, approvals' decisions), one reader per run at a time.
Functions over a held run (its instance, and the inbox-reading flags of its
bookkeeping), through the :class:`Worker`'s public surface."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import orjson

from duro._history import ChildFailedMeta, EventKind, UpdateMeta
from duro._messages import ChildDone, MessageKind
from duro.errors import DuroError, ErrorInfo, PayloadDecodeError
from duro.store import InboxMessage, NewEvent
from duro.store._rules import update_of
from duro.worker import _cache as cache
from duro.worker import _decide as decide
from duro.worker import _local_steps as steps
from duro.workflow._instance import ChildCommand, StepCommand

if TYPE_CHECKING:
    from duro.worker._held import HeldRun
    from duro.worker._worker import Worker

__all__ = ["check", "consume", "consume_once"]

log = logging.getLogger("duro.worker")


def check(w: Worker, run_id: str) -> None:
    """Read the inbox of a held run now (or once more, if a read is under way)."""
    held = w.runs.active.get(run_id)
    if held is None or held.finishing:
        return
    if held.reading_inbox:
        held.inbox_again = True  # the running consumer reads once more when done
        return
    w.spawn(consume(w, held))


async def consume(w: Worker, held: HeldRun, *, after: bool = True) -> None:
    """Record what waits in a held run's inbox, then (``after``) let the run go on."""
    # One consumer per run at a time: two concurrent reads of the same messages
    # would record them twice.
    if held.reading_inbox:
        held.inbox_again = True
        return
    held.reading_inbox = True
    assert w.loop is not None
    held.inbox_read = read = w.loop.create_future()
    try:
        while True:
            held.inbox_again = False
            await consume_once(w, held, after=after)
            if not held.inbox_again or not w.runs.holds(held):
                return
    finally:
        held.reading_inbox = False
        held.inbox_read = None
        read.set_result(None)


async def consume_once(w: Worker, held: HeldRun, *, after: bool) -> None:
    """One read of the inbox: what is there goes into the history in one fenced append
    that also deletes it (rejected updates are answered outside the history)."""
    inst = held.inst
    messages = await w.store.read_inbox(held.run_id)
    if (not messages or not w.runs.holds(held) or held.finishing
            or inst.park_error is not None):  # a parked run takes its messages when resumed
        return
    try:
        messages = await _decoded(w, messages)
    except PayloadDecodeError as exc:  # a key or blob it needs is missing: nothing lost
        inst.park(exc)
        decide.after(w, held)
        return
    now = w.clock.now()
    events: list[NewEvent] = []
    last_id: int | None = None
    rejected: list[tuple[int, str, Exception]] = []
    for m in messages:
        event = _event_of(w, held, m, now)
        if isinstance(event, Exception):  # an update its validator rejected
            rejected.append((m.id, update_of(m), event))
            continue
        if event is not None:
            events.append(event)
        last_id = m.id
    for msg_id, update_id, error in rejected:
        payload = ErrorInfo.from_exception(error).to_payload()
        try:
            await w.store.reject_update(held.run_id, update_id, msg_id, error=payload,
                                        now=now)
        except DuroError as exc:
            log.warning("could not record a rejected update: %s", exc)
    if not w.runs.holds(held) or held.finishing:
        return
    if not events:
        if last_id is not None:  # only stale messages: drop them
            await held.append([], consume_inbox_upto=last_id)
        return
    cached = [(ev.op, ev.data) for ev in events if ev.kind == EventKind.STEP_COMPLETED
              and ev.op is not None and _is_cached(inst.commands.get(ev.op))]
    held.inflight += 1
    ok = await held.append(events, consume_inbox_upto=last_id)
    if ok and cached:  # a queued cached step's success: stored before the run goes on
        await cache.remember_tasks(w, held, cached)
    held.inflight -= 1
    if ok:
        for ev in events:
            inst.apply(ev.kind, ev.op, ev.name, ev.data, ev.meta, ev.ts)
        if after:
            decide.after(w, held)


def _is_cached(cmd: object) -> bool:
    return isinstance(cmd, StepCommand) and isinstance(cmd.cache_key, cache.CacheKey)


def _event_of(w: Worker, held: HeldRun, m: InboxMessage,
              now: float) -> NewEvent | Exception | None:
    """The history event a message becomes: None for a stale one (dropped), the
    validator's error for a rejected update."""
    if m.kind == MessageKind.UPDATE:
        data, meta = m.data, m.meta
        if meta is None and data:  # stored before migration 6: {"update_id", "args"}
            raw = orjson.loads(data)
            data, meta = orjson.dumps(raw.get("args", [])), UpdateMeta(
                update_id=str(raw.get("update_id"))).encode()
        error = held.inst.validate_update(m.name or "", orjson.loads(data) if data else [])
        if error is not None:
            return error
        return NewEvent(kind=EventKind.UPDATE_ACCEPTED, ts=now, name=m.name, data=data,
                        meta=meta)
    if m.kind == MessageKind.CHILD_DONE:
        op = int(m.name or 0)
        cmd = held.inst.commands.get(op)
        wf_name = cmd.workflow.name if isinstance(cmd, ChildCommand) else None
        done, data = _child_done(m)
        if done.status == "completed":
            return NewEvent(kind=EventKind.CHILD_COMPLETED, ts=now, op=op, name=wf_name,
                            data=data)
        return NewEvent(kind=EventKind.CHILD_FAILED, ts=now, op=op, name=wf_name, data=data,
                        meta=ChildFailedMeta(status=done.status).encode())
    if m.kind == MessageKind.TASK_DONE:
        return steps.task_event(w, held, int(m.name or 0), m.data, m.meta)
    if m.kind == MessageKind.CANCEL:
        return NewEvent(kind=EventKind.CANCEL_REQUESTED, ts=now)
    if m.kind == MessageKind.APPROVAL:  # a human's decision, recorded as the audit trail
        op = int(m.name or 0)
        return NewEvent(kind=EventKind.APPROVAL_DECIDED, ts=now, op=op,
                        name=held.inst.approvals.name_of(op), meta=m.meta)
    return NewEvent(kind=EventKind.SIGNAL_RECEIVED, ts=now, name=m.name, data=m.data,
                    meta=m.meta)  # the sender's headers (SignalMeta)


def _child_done(m: InboxMessage) -> tuple[ChildDone, bytes | None]:
    """A ``child_done`` message's outcome and payload (also in the format stored before
    migration 6: one JSON object with the payload inside)."""
    if m.meta is not None or not m.data:
        return ChildDone.decode(m.meta), m.data
    raw = orjson.loads(m.data)
    done = ChildDone(status=str(raw.get("status", "failed")), run_id=str(raw.get("run_id")))
    return done, orjson.dumps(raw.get("result" if done.status == "completed" else "error"))


async def _decoded(w: Worker, messages: list[InboxMessage]) -> list[InboxMessage]:
    """Messages with their payloads as JSON (the workflow sees them so; the events they
    become are stored through the codecs again)."""
    data = await w.payloads.decode_many([m.data for m in messages])
    return [m if d is m.data else dataclasses.replace(m, data=d)
            for m, d in zip(messages, data, strict=True)]
