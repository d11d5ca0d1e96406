"""Public read models: a run's description and its history events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from duro._clock import iso, parse_time, utc
from duro._history import STEP_STATUS, EventKind, SearchValue
from duro.errors import ErrorInfo
from duro.store import EventRecord, RunRecord, RunStatus, StreamRecord
from duro.store._records import QueueConfig, QueueStats, WorkerRecord

__all__ = ["Event", "RunInfo", "RunPage", "StepSummary", "StreamChunk", "WorkerInfo",
           "parse_time",
           "queue_from_json", "queue_json", "summarize_steps"]


def _loads(data: bytes | None) -> tuple[Any, str | None]:
    if data is None:
        return None, None
    try:
        return orjson.loads(data), None
    except orjson.JSONDecodeError as exc:
        return None, f"corrupt payload: {exc}"


def _required_time(text: Any) -> dt.datetime:
    when: dt.datetime | None = parse_time(text)
    if when is None:
        raise ValueError("a required time is missing")
    return when


def decode_error(data: bytes | None) -> ErrorInfo | None:
    """An ErrorInfo from a stored error payload, None for none (see
    :meth:`ErrorInfo.from_payload`)."""
    return None if data is None else ErrorInfo.from_payload(data)


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """A run as the store describes it."""

    workflow_id: str
    run_id: str
    workflow_name: str
    status: RunStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    wake_at: dt.datetime | None
    owner: str | None
    history_length: int
    error: ErrorInfo | None
    result_json: Any
    """The result as plain JSON (decode it with the handle's ``result()`` for types)."""
    parent_run_id: str | None = None
    """The run that started this one as a child, if any."""
    origin_run_id: str | None = None
    """The run this one continues (continue-as-new) or was reset, retried or forked from."""
    damage: str | None = None
    """What is wrong with the stored row, when ``status`` is ``CORRUPT``."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Context the run carries (``start(..., headers=)``, or inherited from its parent)."""
    search_attributes: Mapping[str, SearchValue] = field(default_factory=dict)
    """The run's search attributes as they stand (its start's, then its upserts)."""
    namespace: str = "default"
    """The namespace the run belongs to (docs/namespaces.md)."""

    @classmethod
    def from_record(cls, r: RunRecord,
                    search_attributes: Mapping[str, SearchValue] | None = None) -> RunInfo:
        created = utc(r.created_at)
        updated = utc(r.updated_at)
        assert created is not None and updated is not None
        result, _ = _loads(r.result)
        return cls(workflow_id=r.workflow_id, run_id=r.run_id, workflow_name=r.workflow_name,
                   status=r.status, created_at=created, updated_at=updated,
                   closed_at=utc(r.closed_at), wake_at=utc(r.wake_at), owner=r.owner,
                   history_length=r.history_len, error=decode_error(r.error), result_json=result,
                   parent_run_id=r.parent_run_id, origin_run_id=r.origin_run_id,
                   damage=r.damage, headers=dict(r.headers or {}),
                   search_attributes=dict(search_attributes or {}), namespace=r.namespace)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO 8601, UTC; ``duration`` in seconds once
        closed): the form of ``duro ls --json`` and ``duro show --json``."""
        closed = self.closed_at
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "namespace": self.namespace,
            "workflow_name": self.workflow_name,
            "status": self.status.value,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "closed_at": iso(closed),
            "duration": None if closed is None else (closed - self.created_at).total_seconds(),
            "wake_at": iso(self.wake_at),
            "owner": self.owner,
            "history_length": self.history_length,
            "result": self.result_json,
            "error": None if self.error is None else self.error.to_dict(),
            "parent_run_id": self.parent_run_id,
            "origin_run_id": self.origin_run_id,
            "headers": dict(self.headers),
            "search_attributes": dict(self.search_attributes),
            **({"damage": self.damage} if self.damage else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunInfo:
        """The run from its JSON form (:meth:`to_json`, as the HTTP API sends it).

        Raises:
            KeyError, ValueError: Not such a form.
        """
        error = data.get("error")
        return cls(workflow_id=data["workflow_id"], run_id=data["run_id"],
                   workflow_name=data["workflow_name"], status=RunStatus(data["status"]),
                   created_at=_required_time(data["created_at"]),
                   updated_at=_required_time(data["updated_at"]),
                   closed_at=parse_time(data.get("closed_at")),
                   wake_at=parse_time(data.get("wake_at")), owner=data.get("owner"),
                   history_length=int(data["history_length"]),
                   error=None if error is None else ErrorInfo.from_dict(error),
                   result_json=data.get("result"), parent_run_id=data.get("parent_run_id"),
                   origin_run_id=data.get("origin_run_id"), damage=data.get("damage"),
                   headers=dict(data.get("headers") or {}),
                   search_attributes=dict(data.get("search_attributes") or {}),
                   namespace=data.get("namespace") or "default")


@dataclass(frozen=True, kw_only=True)
class RunPage:
    """One page of a listing (:meth:`duro.Client.list_page`)."""

    runs: list[RunInfo]
    """Newest first (ties by run id)."""
    next_cursor: str | None
    """Pass it as ``cursor`` for the next page; None when this page is the last."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"runs": [...], "next_cursor": ...}``."""
        return {"runs": [r.to_json() for r in self.runs], "next_cursor": self.next_cursor}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunPage:
        """The page from its JSON form (:meth:`to_json`)."""
        return cls(runs=[RunInfo.from_json(r) for r in data["runs"]],
                   next_cursor=data.get("next_cursor"))


@dataclass(frozen=True, kw_only=True)
class Event:
    """One event of a run's history."""

    seq: int
    kind: str
    time: dt.datetime
    op: int | None
    name: str | None
    data: Any
    """The payload as plain JSON (None when absent or corrupt)."""
    meta: dict[str, Any]
    corrupt: str | None = None
    """Why the payload could not be read, when it could not."""

    @classmethod
    def from_record(cls, r: EventRecord) -> Event:
        data, bad = _loads(r.data)
        meta, _ = _loads(r.meta)
        when = utc(r.ts)
        assert when is not None
        return cls(seq=r.seq, kind=r.kind, time=when, op=r.op, name=r.name, data=data,
                   meta=meta if isinstance(meta, dict) else {}, corrupt=bad)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out: dict[str, Any] = {"seq": self.seq, "kind": self.kind,
                               "time": self.time.isoformat(), "op": self.op, "name": self.name,
                               "data": self.data, "meta": self.meta}
        if self.corrupt:
            out["corrupt"] = self.corrupt
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        """The event from its JSON form (:meth:`to_json`, as the HTTP API sends it)."""
        meta = data.get("meta")
        return cls(seq=int(data["seq"]), kind=data["kind"], time=_required_time(data["time"]),
                   op=data.get("op"), name=data.get("name"), data=data.get("data"),
                   meta=meta if isinstance(meta, dict) else {}, corrupt=data.get("corrupt"))


@dataclass(frozen=True, kw_only=True)
class StreamChunk:
    """One item of a run's stream (``handle.stream()``): a chunk a step gave to
    ``duro.stream()``, or a marker.

    ``kind`` is ``"chunk"``; ``"superseded"`` (a marker: every chunk of ``op`` before
    it is superseded, because a new execution of the step began streaming: discard
    those you have); ``"truncated"`` (a marker: the run's stream reached its cap,
    nothing after it was kept); or ``"closed"`` (a marker: the workflow closed its
    stream with ``duro.close_stream()``; readers stop there). A value workflow code
    wrote has ``op == -1``, ``step == ""`` and ``execution == "workflow"``.
    """

    offset: int
    """Its position in the run's stream: dense from 0; resume from ``offset + 1``."""
    kind: str
    step: str
    op: int
    """The step's sequence number in the run (one op per step call); -1 for workflow
    code's own values and the closed marker."""
    attempt: int
    execution: str
    """Which execution of the attempt wrote it (an attempt lost with its worker runs
    again with the same number)."""
    data: Any
    """The chunk (text or JSON, as given); None for a marker."""
    superseded: bool
    """Whether a later execution of the step had superseded it when it was read."""
    time: dt.datetime

    @classmethod
    def from_record(cls, r: StreamRecord) -> StreamChunk:
        when = utc(r.ts)
        assert when is not None
        data, _ = _loads(None if r.data is None else r.data.encode())
        return cls(offset=r.offset, kind=r.kind.value, step=r.step, op=r.op,
                   attempt=r.attempt, execution=r.execution, data=data,
                   superseded=r.superseded, time=when)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"offset": self.offset, "kind": self.kind, "step": self.step, "op": self.op,
                "attempt": self.attempt, "execution": self.execution, "data": self.data,
                "superseded": self.superseded, "time": self.time.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamChunk:
        """The item from its JSON form (:meth:`to_json`, as the HTTP API sends it)."""
        return cls(offset=int(data["offset"]), kind=str(data["kind"]), step=str(data["step"]),
                   op=int(data["op"]), attempt=int(data["attempt"]),
                   execution=str(data["execution"]), data=data.get("data"),
                   superseded=bool(data.get("superseded")),
                   time=_required_time(data["time"]))


@dataclass(frozen=True, kw_only=True)
class WorkerInfo:
    """A worker registered in the store (:meth:`duro.Client.workers`)."""

    worker_id: str
    host: str
    pid: int
    started_at: dt.datetime
    lease_until: dt.datetime
    live: bool
    """Its lease had not expired when read (a dead worker's row stays until another
    worker takes its runs back)."""
    running: int
    """Runs it holds that are running."""
    queues: list[str] | None = None
    """The queues it serves (as it registered); None: every queue."""

    @classmethod
    def from_record(cls, r: WorkerRecord, *, now: float) -> WorkerInfo:
        started, until = utc(r.started_at), utc(r.lease_until)
        assert started is not None and until is not None
        return cls(worker_id=r.worker_id, host=r.host, pid=r.pid, started_at=started,
                   lease_until=until, live=r.lease_until > now, running=r.running,
                   queues=None if r.queues is None else list(r.queues))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO 8601, UTC)."""
        return {"worker_id": self.worker_id, "host": self.host, "pid": self.pid,
                "started_at": iso(self.started_at), "lease_until": iso(self.lease_until),
                "live": self.live, "running": self.running, "queues": self.queues}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerInfo:
        """The worker from its JSON form (:meth:`to_json`)."""
        return cls(worker_id=data["worker_id"], host=data["host"], pid=int(data["pid"]),
                   started_at=_required_time(data["started_at"]),
                   lease_until=_required_time(data["lease_until"]), live=bool(data["live"]),
                   running=int(data["running"]),
                   queues=None if data.get("queues") is None else list(data["queues"]))


def queue_json(stats: QueueStats) -> dict[str, Any]:
    """A queue's figures as JSON (``duro queues --json``, ``GET /v1/queues``)."""
    c = stats.config
    return {"queue": c.name, "pending": stats.pending, "suspended": stats.suspended,
            "running": stats.running, "started_last_period": stats.started_last_period,
            "tasks_pending": stats.tasks_pending, "tasks_running": stats.tasks_running,
            "limits": {"concurrency": c.concurrency, "per_worker": c.per_worker,
                       "rate_limit": c.rate_limit, "rate_period": c.rate_period,
                       "key_concurrency": c.key_concurrency}}


def queue_from_json(data: Mapping[str, Any]) -> QueueStats:
    """A queue's figures from their JSON form (:func:`queue_json`)."""
    limits = data.get("limits") or {}
    config = QueueConfig(name=data["queue"], concurrency=limits.get("concurrency"),
                         per_worker=limits.get("per_worker"),
                         rate_limit=limits.get("rate_limit"),
                         rate_period=float(limits.get("rate_period", 1.0)),
                         key_concurrency=limits.get("key_concurrency"))
    return QueueStats(config=config, pending=int(data["pending"]),
                      suspended=int(data["suspended"]), running=int(data["running"]),
                      started_last_period=int(data["started_last_period"]),
                      tasks_pending=int(data.get("tasks_pending", 0)),
                      tasks_running=int(data.get("tasks_running", 0)))


@dataclass(frozen=True, kw_only=True)
class StepSummary:
    """One step of a run, summarized from its history."""

    op: int
    name: str
    status: str  # completed | failed | retrying
    attempts: int
    duration: float | None
    """Seconds the successful (or last) attempt took."""
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"op": self.op, "name": self.name, "status": self.status,
                "attempts": self.attempts, "duration": self.duration, "error": self.error}


def summarize_steps(events: list[Event]) -> list[StepSummary]:
    """Each step of a history with its outcome, attempts and duration."""
    steps: dict[int, StepSummary] = {}
    for ev in events:
        if ev.op is None or not ev.kind.startswith("step_"):
            continue
        status = STEP_STATUS[ev.kind]
        err = None
        if ev.kind != EventKind.STEP_COMPLETED and isinstance(ev.data, dict):
            err = f"{ev.data.get('type')}: {ev.data.get('message')}"
        steps[ev.op] = StepSummary(op=ev.op, name=ev.name or "?", status=status,
                                   attempts=int(ev.meta.get("attempt", 1)),
                                   duration=ev.meta.get("duration"), error=err)
    return [steps[k] for k in sorted(steps)]
