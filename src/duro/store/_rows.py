"""Rows into records, once for every store: a row is anything indexable by column name
(a ``dict``, a ``sqlite3.Row``)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, Protocol

import orjson

from duro._history import group_events, headers_of
from duro.store._approvals import ApprovalRecord
from duro.store._records import (
    Claim,
    InboxMessage,
    LoadedRun,
    NewEvent,
    QueueConfig,
    RunRecord,
    RunStatus,
    TaskRecord,
    UpdateOutcome,
)
from duro.store._schedules import ScheduleRecord
from duro.store._tokens import TokenRecord

__all__ = ["Row", "approval_record", "claim", "histories_wanted", "inbox_message",
           "loaded_runs", "new_event",
           "queue_config", "run_record", "schedule_record", "task_record", "token_record",
           "update_outcome"]


class Row(Protocol):
    """A database row, by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


_STATUSES = {s.value: s for s in RunStatus if s is not RunStatus.CORRUPT}
_TIMES = ("created_at", "updated_at")
_OPTIONAL_TIMES = ("closed_at", "wake_at", "deadline_at")
_COUNTS = ("epoch", "history_len", "priority", "depth")
_NUMERIC = (*_TIMES, *_OPTIONAL_TIMES, *_COUNTS)
_REQUIRED = (*_TIMES, *_COUNTS)
_NUMBER = frozenset({int, float})


def run_record(row: Row) -> RunRecord:
    """A :class:`RunRecord` from a ``runs`` row (a dict, or a ``sqlite3.Row``).

    A damaged row gives a record with status ``CORRUPT``, the damaged values replaced
    (0, None) and ``damage`` saying what was found, instead of an error: one bad row
    (a status duro does not know, a time that is not a number — SQLite keeps any value
    it is given) must not break every listing that includes it.
    """
    raw_status = row["status"]
    status = _STATUSES.get(raw_status)
    values = {key: row[key] for key in _NUMERIC}
    if status is not None and all(type(values[k]) in _NUMBER for k in _REQUIRED) and all(
            values[k] is None or type(values[k]) in _NUMBER for k in _OPTIONAL_TIMES):
        # The usual case, in a few comparisons: a run is read on every wait for a result.
        return RunRecord(
            run_id=row["run_id"], workflow_id=row["workflow_id"],
            workflow_name=row["workflow_name"], status=status, input=row["input"],
            result=row["result"], error=row["error"], owner=row["owner"],
            parent_run_id=row["parent_run_id"], parent_op=row["parent_op"],
            parent_close=row["parent_close"], origin_run_id=row["origin_run_id"],
            queue=row["queue"] or "default", concurrency_key=row["concurrency_key"],
            headers=_headers(row), namespace=row["namespace"], **values)
    problems = []
    if status is None:
        problems.append(f"unknown status {raw_status!r}")
    for key, value in values.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number and not (value is None and key not in _TIMES):
            problems.append(f"{key} is {value!r}, not a number")
            values[key] = None if key in _OPTIONAL_TIMES else 0
    return RunRecord(
        run_id=row["run_id"], workflow_id=row["workflow_id"],
        workflow_name=row["workflow_name"],
        status=RunStatus.CORRUPT if problems or status is None else status,
        input=row["input"], result=row["result"], error=row["error"],
        owner=row["owner"], parent_run_id=row["parent_run_id"], parent_op=row["parent_op"],
        parent_close=row["parent_close"], origin_run_id=row["origin_run_id"],
        queue=row["queue"] or "default", concurrency_key=row["concurrency_key"],
        **{k: v if v is not None or k in _OPTIONAL_TIMES else 0 for k, v in values.items()},
        damage="; ".join(problems) or None, headers=_headers(row),
        namespace=row["namespace"])


def _headers(row: Row) -> dict[str, str] | None:
    """A run's headers column (NULL, or absent from a query's columns: none)."""
    try:
        raw = row["headers"]
    except (KeyError, IndexError):
        return None
    if not raw:
        return None
    try:
        return headers_of(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None  # damaged: the run still lists


def claim(row: Row, *, taken_over: bool = False) -> Claim:
    """A run just claimed; ``taken_over``: from a dead worker (a ``take_over`` row, which
    says how many times in a row: any other claim counts 0)."""
    return Claim(run_id=row["run_id"], workflow_id=row["workflow_id"],
                 workflow_name=row["workflow_name"], epoch=row["epoch"],
                 history_len=row["history_len"], queue=row["queue"],
                 recoveries=row["recoveries"] if taken_over else 0)


def queue_config(row: Row) -> QueueConfig:
    """A queue's limits."""
    return QueueConfig(name=row["name"], concurrency=row["concurrency"],
                       per_worker=row["per_worker"], rate_limit=row["rate_limit"],
                       rate_period=row["rate_period"] or 1.0,
                       key_concurrency=row["key_concurrency"])


def task_record(row: Row) -> TaskRecord:
    """A step attempt routed to a queue."""
    return TaskRecord(task_id=row["task_id"], run_id=row["run_id"], op=row["op"],
                      attempt=row["attempt"], step=row["step"], queue=row["queue"],
                      args=row["args"], info=row["info"])


def inbox_message(row: Row) -> InboxMessage:
    """A message waiting in a run's inbox."""
    return InboxMessage(id=row["id"], kind=row["kind"], name=row["name"], data=row["data"],
                        meta=row["meta"])


def update_outcome(row: Row) -> UpdateOutcome:
    """Where an update stands."""
    return UpdateOutcome(status=row["status"], result=row["result"], error=row["error"])


def new_event(row: Row) -> NewEvent:
    """A stored event as one to write again (a copy's history)."""
    return NewEvent(kind=row["kind"], ts=row["ts"], op=row["op"], name=row["name"],
                    data=row["data"], meta=row["meta"])


def schedule_record(row: Row) -> ScheduleRecord:
    """A schedule as stored."""
    return ScheduleRecord(
        schedule_id=row["schedule_id"], workflow_name=row["workflow_name"],
        queue=row["queue"], input=row["input"], cron=row["cron"], every=row["every"],
        anchor=row["anchor"], timezone=row["timezone"], overlap=row["overlap"],
        catch_up=row["catch_up"], source=row["source"], paused=bool(row["paused"]),
        note=row["note"], next_fire_at=row["next_fire_at"],
        last_fire_at=row["last_fire_at"], last_workflow_id=row["last_workflow_id"],
        buffered_at=row["buffered_at"], fired=int(row["fired"]), missed=int(row["missed"]),
        overlap_skipped=int(row["overlap_skipped"]), created_at=row["created_at"],
        updated_at=row["updated_at"], namespace=row["namespace"])


def histories_wanted(
    run_ids: Sequence[str], history: Collection[str] | None
) -> tuple[list[str], list[str]]:
    """``Store.load_runs``'s arguments as (all run ids, those whose history to read)."""
    ids = list(run_ids)
    return ids, ids if history is None else [r for r in ids if r in history]


def loaded_runs(
    run_ids: Sequence[str], history: Collection[str] | None,
    events: Iterable[Sequence[Any]], heartbeats: Iterable[Sequence[Any]],
    with_messages: Iterable[Sequence[Any]],
) -> dict[str, LoadedRun]:
    """``Store.load_runs``'s answer from its three reads' rows: events as ``(run_id, seq,
    kind, ts, op, name, data, meta)`` ordered by run, heartbeats as ``(run_id, op,
    details)``, runs with inbox messages as ``(run_id,)``."""
    histories = group_events(events)
    beats: dict[str, dict[int, bytes]] = {}
    for run_id, op, details in heartbeats:
        beats.setdefault(run_id, {})[int(op)] = details
    inbox = {row[0] for row in with_messages}
    return {run_id: LoadedRun(
                history=(histories.get(run_id, []) if history is None or run_id in history
                         else None),
                heartbeats=beats.get(run_id, {}), inbox=run_id in inbox)
            for run_id in run_ids}


def approval_record(row: Row) -> ApprovalRecord:
    """A human approval as stored."""
    return ApprovalRecord(
        approval_id=row["approval_id"], run_id=row["run_id"], op=int(row["op"]),
        workflow_id=row["workflow_id"], workflow_name=row["workflow_name"],
        namespace=row["namespace"], name=row["name"],
        context=None if row["context"] is None else bytes(row["context"]),
        requested_at=row["requested_at"], deadline_at=row["deadline_at"],
        status=row["status"], decided_by=row["decided_by"], comment=row["comment"],
        decided_at=row["decided_at"])


def token_record(row: Row) -> TokenRecord:
    """An API token as stored."""
    return TokenRecord(
        token_id=row["token_id"], name=row["name"], namespace=row["namespace"],
        scope=row["scope"], secret_hash=row["secret_hash"], created_at=row["created_at"],
        expires_at=row["expires_at"], revoked_at=row["revoked_at"])
