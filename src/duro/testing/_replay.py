"""Replaying a recorded history against current workflow code, without a store.

Use it to catch nondeterminism before deploying: replay the histories of real runs
(``duro history ID --json``) against the new code in a unit test.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from duro.client._records import Event
from duro.errors import DuroError, ErrorInfo
from duro.store import EventRecord
from duro.workflow._api import Workflow
from duro.workflow._instance import ChildCommand, StepCommand
from duro.workflow._replayer import replayed

__all__ = ["ReplayResult", "load_history", "replay"]


@dataclass(frozen=True, kw_only=True)
class ReplayResult:
    """Where the code stands after consuming the whole history."""

    status: str
    """``completed``, ``failed``, ``cancelled`` or ``waiting`` (more work pending)."""
    result: Any = None
    error: ErrorInfo | None = None
    pending: list[tuple[int, str, str | None]] = field(default_factory=list)
    """Operations issued but not resolved by the history: (seq, kind, name)."""


def load_history(path: str | Path) -> dict[str, Any]:
    """Read a history file: a JSON object with ``run_id`` and ``events`` (or a bare list)."""
    raw = json.loads(Path(path).read_text("utf-8"))
    return raw if isinstance(raw, dict) else {"events": raw}


def _record(run_id: str, ev: Event | dict[str, Any]) -> EventRecord:
    if isinstance(ev, Event):  # what to_json() would give, without the ISO-time round trip
        return EventRecord(run_id=run_id, seq=ev.seq, kind=ev.kind, ts=ev.time.timestamp(),
                           op=ev.op, name=ev.name,
                           data=None if ev.data is None else orjson.dumps(ev.data),
                           meta=orjson.dumps(ev.meta) if ev.meta else None)
    when = ev["time"]
    ts = dt.datetime.fromisoformat(when).timestamp() if isinstance(when, str) else float(when)
    data = ev.get("data")
    meta = ev.get("meta") or None
    return EventRecord(run_id=run_id, seq=int(ev["seq"]), kind=str(ev["kind"]), ts=ts,
                       op=ev.get("op"), name=ev.get("name"),
                       data=None if data is None else orjson.dumps(data),
                       meta=None if meta is None else orjson.dumps(meta))


def replay(
    workflow: Workflow[Any, Any],
    events: Sequence[Event | dict[str, Any]],
    *,
    run_id: str = "replay",
    workflow_id: str = "replay",
    workflow_name: str | None = None,
) -> ReplayResult:
    """Replay ``events`` with the current code of ``workflow``.

    Pass the original ``run_id`` when the code uses ``duro.random()`` or ``uuid4()``.
    The history must have been recorded by ``workflow`` (its ``run_started`` event
    names the workflow); to replay it with code registered under another name on
    purpose (a candidate version beside the current one), pass the recorded name as
    ``workflow_name``.

    Raises:
        WorkflowMismatchError: The history was recorded by another workflow.
        NondeterminismError: The code no longer matches the history.
        DuroError: Another problem that would park the run (blocking code, bad payload).
    """
    records = [_record(run_id, e) for e in events]
    with replayed(workflow, records, run_id=run_id, workflow_id=workflow_id,
                  workflow_name=workflow_name) as inst:
        if inst.park_error is not None:
            raise inst.park_error
        main = inst.main
        if main is None or not main.done():
            pending = [(c.op, c.kind, c.step.name if isinstance(c, StepCommand)
                        else c.workflow.name if isinstance(c, ChildCommand) else None)
                       for c in inst.pending()]
            return ReplayResult(status="waiting", pending=pending)
        if main.cancelled():
            return ReplayResult(status="cancelled")
        exc = main.exception()
        if exc is not None:
            if isinstance(exc, DuroError) and exc is inst.park_error:
                raise exc
            return ReplayResult(status="failed", error=ErrorInfo(type=type(exc).__name__,
                                                                 message=str(exc)))
        return ReplayResult(status="completed", result=main.result())
