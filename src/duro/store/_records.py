"""Records the store reads and writes: frozen, keyword-only dataclasses."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from duro._history import EventRecord, Headers, NewEvent, UpdateMeta, event_records
from duro._messages import MessageKind

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
    "OpenTask",
    "Placement",
    "QueryAnswer",
    "QueryRequest",
    "QueueConfig",
    "QueueStats",
    "RunLinks",
    "RunRecord",
    "RunStatus",
    "RunWaitsRecord",
    "StreamKind",
    "StreamRecord",
    "TaskRecord",
    "UpdateOutcome",
    "WorkerRecord",
    "event_records",
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
    headers: Headers | None = None
    """Context carried with the run (see :class:`RunLinks`)."""
    namespace: str = "default"
    """The namespace the run belongs to (a child, a successor or a copy: its origin's)."""


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
    tasks_pending: int = 0
    """Step attempts routed to this queue (``@duro.step(queue=...)``) waiting for a worker
    that serves it."""
    tasks_running: int = 0
    """Step attempts of this queue a worker has claimed and runs now."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerRecord:
    """A registered worker: where it runs, its lease, how many runs it holds now."""

    worker_id: str
    host: str
    pid: int
    started_at: float
    lease_until: float
    """Wall-clock time its lease ends unless renewed (past: presumed dead)."""
    running: int
    """Runs it owns that are running."""
    queues: tuple[str, ...] | None = None
    """The queues it serves; None: every queue."""


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
class OpenTask:
    """A run's step task not done yet: one attempt of a step routed to a queue."""

    op: int
    attempt: int
    step: str
    queue: str
    owner: str | None
    """The worker that claimed it (None: no worker of the queue has yet)."""
    created_at: float
    updated_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class RunWaitsRecord:
    """What a run waits for, as stored: the waits its worker recorded when it last
    suspended (JSON, ``duro._waits``; None if it never did) and its open step tasks."""

    waits: str | None
    tasks: tuple[OpenTask, ...]


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
    headers: Headers | None = None
    """Context carried with the run (trace ids, tenant, principal): given at its start,
    inherited by its children and by the run it continues as."""
    budgets: tuple[Mapping[str, Any], ...] = ()
    """The budgets given at its start (``duro.Budget.to_json()`` each), recorded in its
    ``run_started`` event (not inherited)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """A message for a run's inbox (see :class:`duro._messages.MessageKind`): its payload
    opaque in ``data``, what duro reads about it in ``meta``."""

    kind: str
    name: str | None = None
    data: bytes | None = None
    meta: bytes | None = None
    update_id: str | None = None
    """An update request's id (also in ``meta``): the store keeps its outcome row."""
    signal_id: str | None = None
    """A signal's delivery id (also in ``meta``): the store records the signal at most
    once per id in the workflow id's chain of runs."""

    @classmethod
    def update_request(cls, name: str | None, update_id: str, args: bytes | None,
                       headers: Headers | None = None) -> Message:
        """An update request: its arguments' payload (a JSON array), its id, and the
        sender's headers."""
        return cls(kind=MessageKind.UPDATE, name=name, data=args,
                   meta=UpdateMeta(update_id=update_id, headers=headers).encode(),
                   update_id=update_id)


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
    #: The run's namespace, for a run created owned by its worker (``adopt``: its
    #: instance starts without reading the stored ``run_started``); a run taken up from
    #: the store reads it from its history.
    namespace: str = "default"


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


@dataclass(frozen=True, kw_only=True, slots=True)
class QueryRequest:
    """A query asked through the store, for a worker with the workflow's code to answer
    (see :meth:`duro.Client.query`)."""

    query_id: str
    run_id: str
    workflow_id: str
    workflow_name: str
    name: str
    args: bytes | None
    """The arguments as a JSON list, in stored form (through the codecs)."""
    headers: bytes | None = None
    """The asker's headers (a JSON object of strings), for the worker's interceptors."""
    created_at: float = 0.0
    expires_at: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class QueryAnswer:
    """A worker's answer to a :class:`QueryRequest`: the value (JSON, in stored form) or
    the error (an ``ErrorInfo`` payload)."""

    answer: bytes | None = None
    error: bytes | None = None


class StreamKind(enum.StrEnum):
    """What a row of a run's stream is (``run_streams.kind``)."""

    CHUNK = "chunk"
    """A chunk a step gave to ``duro.stream()``."""
    SUPERSEDED = "superseded"
    """A marker: every earlier chunk of its op is superseded (a newer execution of the
    step began streaming); a reader that already had them discards them."""
    TRUNCATED = "truncated"
    """A marker: the run reached its stream's cap; nothing after it is kept."""
    CLOSED = "closed"
    """A marker: the workflow closed its stream (``duro.close_stream()``): readers stop."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamRecord:
    """One row of a run's stream, as stored (``data``: the chunk's JSON text)."""

    run_id: str
    offset: int
    kind: StreamKind
    op: int
    step: str
    attempt: int
    execution: str
    data: str | None
    superseded: bool
    ts: float
