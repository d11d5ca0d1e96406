"""The read models' JSON form (what `duro ls/show --json` print, and later the HTTP
API): plain JSON types, ISO times, error chains nested."""

from __future__ import annotations

import orjson

from duro.client import RunInfo, summarize_steps
from duro.client._records import Event
from duro.errors import ErrorInfo
from duro.store import EventRecord, RunRecord, RunStatus


def test_a_failed_run_as_json() -> None:
    cause = ErrorInfo(type="ValueError", message="bad row 7", traceback="tb")
    error = ErrorInfo(type="duro.StepFailedError", message="step load failed", cause=cause)
    record = RunRecord(run_id="r1", workflow_id="w1", workflow_name="etl", status=RunStatus.FAILED,
                       input=b"{}", result=None, error=error.to_payload(), created_at=100.0,
                       updated_at=102.5, closed_at=102.5, wake_at=None, owner=None, epoch=1,
                       history_len=4)
    out = RunInfo.from_record(record).to_json()
    assert orjson.loads(orjson.dumps(out)) == out
    assert out["status"] == "failed" and out["duration"] == 2.5
    assert out["created_at"] == "1970-01-01T00:01:40+00:00"
    assert out["error"]["type"] == "duro.StepFailedError"
    assert out["error"]["cause"] == {"type": "ValueError", "message": "bad row 7",
                                     "traceback": "tb", "non_retryable": False}
    assert "damage" not in out


def test_steps_as_json() -> None:
    events = [Event.from_record(EventRecord(run_id="r", seq=2, kind="step_completed", ts=1.0,
                                            op=1, name="load", data=b"3",
                                            meta=b'{"attempt":2,"duration":0.25}'))]
    [step] = summarize_steps(events)
    assert step.to_json() == {"op": 1, "name": "load", "status": "completed", "attempts": 2,
                              "duration": 0.25, "error": None}
