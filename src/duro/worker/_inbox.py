"""Messages for held runs: reading a run's inbox and recording what is there in its
history (signals, update requests that pass their validator, cancel requests, children's
ends, step tasks' outcomes), one reader per run at a time. Functions over the
:class:`Worker`'s state."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from duro._history import ChildFailedMeta, EventKind, UpdateMeta
from duro.errors import DuroError, ErrorInfo
from duro.store import NewEvent
from duro.worker import _decide as decide
from duro.worker import _local_steps as steps
from duro.workflow._instance import ChildCommand, RunInstance

if TYPE_CHECKING:
    from duro.worker._worker import Worker

__all__ = ["check", "consume", "consume_once"]

log = logging.getLogger("duro.worker")


def check(w: Worker, run_id: str) -> None:
    """Read the inbox of a held run now (or once more, if a read is under way)."""
    inst = w.active.get(run_id)
    if inst is None or inst.finishing:
        return
    if inst.reading_inbox:
        inst.inbox_again = True  # the running consumer reads once more when done
        return
    w._spawn(consume(w, inst))


async def consume(w: Worker, inst: RunInstance, *, after: bool = True) -> None:
    """Record what waits in a held run's inbox, then (``after``) let the run go on."""
    # One consumer per run at a time: two concurrent reads of the same messages
    # would record them twice.
    if inst.reading_inbox:
        inst.inbox_again = True
        return
    inst.reading_inbox = True
    assert w.loop is not None
    inst.inbox_read = read = w.loop.create_future()
    try:
        while True:
            inst.inbox_again = False
            await consume_once(w, inst, after=after)
            if not inst.inbox_again or w.active.get(inst.run_id) is not inst:
                return
    finally:
        inst.reading_inbox = False
        inst.inbox_read = None
        read.set_result(None)


async def consume_once(w: Worker, inst: RunInstance, *, after: bool) -> None:
    """One read of the inbox: what is there goes into the history in one fenced append
    that also deletes it (rejected updates are answered outside the history)."""
    messages = await w.store.read_inbox(inst.run_id)
    if (not messages or w.active.get(inst.run_id) is not inst or inst.finishing
            or inst.park_error is not None):  # a parked run takes its messages when resumed
        return
    now = w.clock.now()
    events: list[NewEvent] = []
    last_id: int | None = None
    rejected: list[tuple[int, str, Exception]] = []
    for msg_id, kind, name, data in messages:
        if kind == "update":
            raw = orjson.loads(data) if data else {}
            error = inst.validate_update(name or "", raw.get("args", []))
            if error is not None:
                rejected.append((msg_id, str(raw.get("update_id")), error))
                continue
            events.append(NewEvent(kind=EventKind.UPDATE_ACCEPTED, ts=now, name=name,
                                   data=orjson.dumps(raw.get("args", [])),
                                   meta=UpdateMeta(update_id=str(raw.get("update_id")))
                                   .encode()))
        elif kind == "child_done":
            raw = orjson.loads(data) if data else {}
            op = int(name or 0)
            cmd = inst.commands.get(op)
            wf_name = cmd.workflow.name if isinstance(cmd, ChildCommand) else None
            status = raw.get("status")
            if status == "completed":
                events.append(NewEvent(kind=EventKind.CHILD_COMPLETED, ts=now, op=op, name=wf_name,
                                       data=orjson.dumps(raw.get("result"))))
            else:
                events.append(NewEvent(kind=EventKind.CHILD_FAILED, ts=now, op=op, name=wf_name,
                                       data=orjson.dumps(raw.get("error")),
                                       meta=ChildFailedMeta(status=str(status)).encode()))
        elif kind == "task_done":
            event = steps.task_event(w, inst, int(name or 0), data)
            if event is not None:
                events.append(event)
        elif kind == "cancel":
            events.append(NewEvent(kind=EventKind.CANCEL_REQUESTED, ts=now))
        else:
            events.append(NewEvent(kind=EventKind.SIGNAL_RECEIVED, ts=now, name=name, data=data))
        last_id = msg_id
    for msg_id, update_id, error in rejected:
        payload = ErrorInfo.from_exception(error).to_payload()
        try:
            await w.store.reject_update(inst.run_id, update_id, msg_id, error=payload,
                                           now=now)
        except DuroError as exc:
            log.warning("could not record a rejected update: %s", exc)
    if w.active.get(inst.run_id) is not inst or inst.finishing:
        return
    if not events:
        if last_id is not None:  # only stale messages: drop them
            await w._append(inst, [], consume_inbox_upto=last_id)
        return
    inst.inflight += 1
    ok = await w._append(inst, events, consume_inbox_upto=last_id)
    inst.inflight -= 1
    if ok:
        for ev in events:
            inst.apply(ev.kind, ev.op, ev.name, ev.data, ev.meta, ev.ts)
        if after:
            decide.after(w, inst)
