"""Records the store reads and writes: frozen, keyword-only dataclasses."""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from duro._history import (
    EventRecord,
    MessageKind,
    NewEvent,
    UpdateMeta,
    event_records,
    group_events,
)

__all__ = [
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "Claim",
    "EventRecord",
    "IdConflictPolicy",
    "IdReusePolicy",
    "InboxMessage",
    "LoadedRun",
    "Message",
    "NewEvent",
    "Placement",
    "QueueConfig",
    "QueueStats",
    "RunLinks",
    "RunRecord",
    "RunStatus",
    "TaskRecord",
    "UpdateOutcome",
    "event_records",
    "histories_wanted",
    "loaded_runs",
    "run_record",
]


class RunStatus(enum.StrEnum):
    """Where a run stands."""

    PENDING = "pending"
    """Started or woken, waiting for a worker to claim it."""
    RUNNING = "running"
    """Owned by a worker that is executing it."""
    SUSPENDED = "suspended"
    """Waiting (timer, backoff, message); costs a row, no memory."""
    PARKED = "parked"
    """Stopped for a code problem (nondeterminism, blocking code); resumes on new code."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"
    TIMED_OUT = "timed_out"
    """The run's execution timeout passed."""
    CONTINUED_AS_NEW = "continued_as_new"
    """The run handed over to a new run of the same workflow id."""
    CORRUPT = "corrupt"
    """Not a state: the run's stored row is damaged (a status duro does not know, a
    time that is not a number). It is listed, with ``damage`` saying what, and never
    claimed or changed; waiting for its result raises ``CorruptRunError``."""

    @property
    def is_terminal(self) -> bool:
        """True once the run can never change again."""
        return self.value in TERMINAL_STATUSES


LIVE_STATUSES = frozenset({"pending", "running", "suspended", "parked"})
TERMINAL_STATUSES = frozenset(
    {"completed", "failed", "cancelled", "terminated", "timed_out", "continued_as_new"}
)

IdConflictPolicy = Literal["use_existing", "fail"]
IdReusePolicy = Literal["use_existing", "allow", "allow_failed", "fail"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRecord:
    """One run as stored."""

    run_id: str
    workflow_id: str
    workflow_name: str
    status: RunStatus
    input: bytes | None
    result: bytes | None
    error: bytes | None
    created_at: float
    updated_at: float
    closed_at: float | None
    wake_at: float | None
    owner: str | None
    epoch: int
    history_len: int
    parent_run_id: str | None = None
    parent_op: int | None = None
    parent_close: str | None = None
    deadline_at: float | None = None
    origin_run_id: str | None = None
    queue: str = "default"
    priority: int = 0
    concurrency_key: str | None = None
    depth: int = 0
    """How deeply the run is nested as a child (0: started from outside)."""
    damage: str | None = None
    """What is wrong with the stored row, when its status is ``CORRUPT``."""


_STATUSES = {s.value: s for s in RunStatus if s is not RunStatus.CORRUPT}
_TIMES = ("created_at", "updated_at")
_OPTIONAL_TIMES = ("closed_at", "wake_at", "deadline_at")
_COUNTS = ("epoch", "history_len", "priority", "depth")
_NUMERIC = (*_TIMES, *_OPTIONAL_TIMES, *_COUNTS)
_REQUIRED = (*_TIMES, *_COUNTS)
_NUMBER = frozenset({int, float})


class _Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def run_record(row: _Row) -> RunRecord:
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
            **values)
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
        damage="; ".join(problems) or None)


@dataclass(frozen=True, kw_only=True, slots=True)
class Placement:
    """Where and when a new run waits for a worker: its queue and flow-control keys.

    Attributes:
        queue: The queue (workers may serve only some queues).
        priority: Higher starts first when the queue is saturated.
        concurrency_key: At most the queue's ``key_concurrency`` runs with the same key
            run at once (e.g. one per customer).
        dedup_key: At most one live run with this key in the queue.
        on_dedup: A live run with the same key is returned (``use_existing``) or is an
            error (``fail``).
        debounce_key: Starts with the same key within ``debounce`` seconds collapse into
            one run, which starts after a quiet period with the last arguments.
        debounce: The quiet period, in seconds.
        start_at: Do not start before this time (durable clock seconds).
    """

    queue: str = "default"
    priority: int = 0
    concurrency_key: str | None = None
    dedup_key: str | None = None
    on_dedup: str = "use_existing"
    debounce_key: str | None = None
    debounce: float = 0.0
    start_at: float | None = None

    @property
    def immediate(self) -> bool:
        """Whether the run may start at once (no delay, no debounce)."""
        return self.start_at is None and self.debounce_key is None


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueConfig:
    """Limits of one queue (None: no limit)."""

    name: str
    concurrency: int | None = None
    per_worker: int | None = None
    rate_limit: int | None = None
    rate_period: float = 1.0
    key_concurrency: int | None = None

    @property
    def limited(self) -> bool:
        """Whether claims in this queue must check limits."""
        return any(v is not None for v in (self.concurrency, self.rate_limit,
                                           self.key_concurrency))


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueStats:
    """A queue's current load and limits."""

    config: QueueConfig
    pending: int
    suspended: int
    running: int
    started_last_period: int


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskRecord:
    """One attempt of a step routed to a queue, waiting for (or held by) a worker."""

    task_id: str
    run_id: str
    op: int
    attempt: int
    step: str
    queue: str
    args: bytes | None
    info: bytes | None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunLinks:
    """How a new run relates to others: its parent, its deadline, where it came from."""

    parent_run_id: str | None = None
    parent_op: int | None = None
    parent_close: str | None = None
    deadline_at: float | None = None
    origin_run_id: str | None = None
    depth: int = 0
    """How deeply the new run is nested: its parent's depth + 1 for a child; a run that
    continues as new keeps its predecessor's."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """A message for a run's inbox (see :class:`duro._history.MessageKind`): its payload
    opaque in ``data``, what duro reads about it in ``meta``."""

    kind: str
    name: str | None = None
    data: bytes | None = None
    meta: bytes | None = None
    update_id: str | None = None
    """An update request's id (also in ``meta``): the store keeps its outcome row."""

    @classmethod
    def update_request(cls, name: str | None, update_id: str, args: bytes | None) -> Message:
        """An update request: its arguments' payload (a JSON array) and its id."""
        return cls(kind=MessageKind.UPDATE, name=name, data=args,
                   meta=UpdateMeta(update_id=update_id).encode(), update_id=update_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class InboxMessage:
    """A message waiting in a run's inbox, in arrival order (``id``)."""

    id: int
    kind: str
    name: str | None
    data: bytes | None
    meta: bytes | None


@dataclass(frozen=True, kw_only=True, slots=True)
class UpdateOutcome:
    """Where an update request stands: requested, accepted, rejected, completed, failed."""

    status: str
    result: bytes | None = None
    error: bytes | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    """A run a worker now owns, with the fencing epoch its writes must carry."""

    run_id: str
    workflow_id: str
    workflow_name: str
    epoch: int
    history_len: int
    queue: str = "default"
    #: Taken over from a worker that died holding it: how many times in a row, with
    #: nothing written in between (0 for any other claim). From the second on the run
    #: is a suspect, taken up alone, and only deaths during its own trial count.
    recoveries: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedRun:
    """What a worker reads to take up a claimed run (``Store.load_runs``).

    Attributes:
        history: All events of the run in order; None when the caller did not ask for
            it (it still holds an instance of the run at the claimed history length).
        heartbeats: The last heartbeat details of each step (empty without history).
        inbox: Whether unconsumed inbox messages were waiting when it was read.
    """

    history: list[EventRecord] | None
    heartbeats: dict[int, bytes]
    inbox: bool


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
