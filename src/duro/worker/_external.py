"""The worker's side of ``duro.external_workflow(id).signal(...)`` / ``.cancel()``: send the
message to the other run's inbox under the operation's delivery id, then record the
outcome in the sending run's history (see ``workflow/_external.py`` for why this is
exactly once)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from duro._history import EventKind, ExternalMeta, NewEvent, SignalMeta
from duro._messages import MessageKind
from duro.errors import DuroError, ErrorInfo, RunNotFoundError
from duro.worker import _decide as decide
from duro.workflow._commands import ExternalCommand

if TYPE_CHECKING:
    from duro.worker._held import HeldRun
    from duro.worker._worker import Worker

__all__ = ["send_external"]

log = logging.getLogger("duro.worker")


async def send_external(w: Worker, held: HeldRun, cmd: ExternalCommand) -> None:
    """Send, record, then answer the workflow's ``await`` (after the commit, as a step's
    result). A store fault drops the run: it is loaded again and sends again, with the
    same delivery id."""
    inst = held.inst
    delivery = ExternalMeta.delivery_id(held.run_id, cmd.op)
    meta = ExternalMeta(message=cmd.message, workflow_id=cmd.workflow_id)
    try:
        data = cmd.data
        if data is not None and w.payloads.active:
            data = await w.payloads.encode(data)
        signal_meta = (SignalMeta(headers=inst.headers, id=delivery).encode()
                       if cmd.message == MessageKind.SIGNAL else None)
        record = await w.store.send_message(
            cmd.workflow_id, cmd.message, cmd.name, data, now=w.clock.now(), meta=signal_meta,
            signal_id=delivery, namespace=inst.namespace)
    except RunNotFoundError as exc:
        event = NewEvent(kind=EventKind.EXTERNAL_FAILED, ts=w.clock.now(), op=cmd.op,
                         name=cmd.name, data=ErrorInfo.from_exception(exc).to_payload(),
                         meta=meta.encode())
    except DuroError as exc:
        log.warning("run %s could not send its %s to %r: %s; it will be retried",
                    held.run_id, cmd.message, cmd.workflow_id, exc)
        held.inflight -= 1
        w.drop(held)
        return
    else:
        w.inbox_hint(record.run_id)
        meta = ExternalMeta(message=cmd.message, workflow_id=cmd.workflow_id,
                            run_id=record.run_id)
        event = NewEvent(kind=EventKind.EXTERNAL_SENT, ts=w.clock.now(), op=cmd.op,
                         name=cmd.name, meta=meta.encode())
    ok = await held.append([event])
    held.inflight -= 1
    if ok:
        inst.apply(event.kind, event.op, event.name, event.data, event.meta, event.ts)
        decide.after(w, held)
