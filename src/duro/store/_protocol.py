"""The store contract: the domain operations duro needs from a database, split by who
uses them, and the exceptions a store may raise.

* :class:`ClientStore`: what a client needs (start runs, read them, send them messages
  and updates): an HTTP server or a process that only starts and watches runs depends
  on this one.
* :class:`WorkerStore`: what a worker needs to execute runs (claims, fenced appends,
  leases, children, step tasks); it is also a client.
* :class:`AdminStore`: operator actions (terminate, resume, reset/retry/fork).
* :class:`~duro.store.ScheduleStore`: schedules (the worker's scheduler, the client's
  ``engine.schedules``).
* :class:`~duro.store.TokenStore`: API tokens (``duro serve``'s auth, ``duro token``).
* :class:`~duro.store.CacheStore`: the durable step cache (``duro cache``).
* :class:`~duro.store.ApprovalStore`: human approvals (``client.approvals``).
* :class:`~duro.store.GraphCheckpointStore`: LangGraph checkpoints (``duro.langgraph``).
* :class:`Store`: all of them, what an :class:`~duro.Engine` (client and worker in one
  process) uses.

**Namespaces.** Every run and schedule belongs to one (``RunRecord.namespace``). The
operations a client calls to reach a run or a schedule from outside take ``namespace``:
the caller's, or None for every namespace (workers and admin tooling). With a namespace,
a run or schedule of another one is exactly as if it did not exist (``None``,
:class:`~duro.errors.RunNotFoundError`, ``ScheduleNotFoundError``), checked in the same
transaction as the write, so nothing of it is read out or changed. Workflow ids (and
schedule ids) stay unique across namespaces: a start whose id another namespace holds is
refused with :class:`~duro.errors.WorkflowAlreadyStartedError` saying only that the id
is taken. Operations by run id that a client reaches only through a run it found in its
namespace (``load_history``, ``get_state``, ``children``, ``get_update``...) take none:
a run never changes namespace, and its children, successors and copies are in its own.

**Exceptions** (enforced by the worker, see ``worker/_worker.py``). Besides the domain
errors an operation documents (:class:`~duro.errors.RunNotFoundError`,
:class:`~duro.errors.WorkflowAlreadyStartedError`, ...), a store raises:

* :class:`Fenced` — a write refused by fencing, having written nothing (another worker
  owns the run, or the write does not continue the stored history). The worker drops
  its copy of the run and lets the store's version be claimed again.
* :class:`~duro.errors.StoreError` — a store fault that may pass: the connection was
  lost, the database is locked, busy or unavailable, a serialization failure, a
  conflict with a concurrent write. Nothing of the failed write was kept; the worker
  retries (it drops the run and loads it again from the store).
* :class:`~duro.errors.DataRejectedError` (a ``StoreError``) — the database refused a
  value (too large to index, out of range, against a constraint): the same write can
  never succeed, so the run is parked with the error.

Anything else raised by a store is a bug (in the store or in duro): the worker parks the
run with that error (``duro resume`` once fixed) instead of retrying it forever. A store
implementation therefore translates every database error into one of the above.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from duro._history import SearchValue
from duro._stats import Stats
from duro.store._approvals import ApprovalStore
from duro.store._budgets import BudgetRequest, BudgetSpend, BudgetVerdict
from duro.store._cache import CacheStore
from duro.store._langgraph import GraphCheckpointStore
from duro.store._records import (
    Claim,
    EventRecord,
    IdConflictPolicy,
    IdReusePolicy,
    InboxMessage,
    LoadedRun,
    Message,
    NewEvent,
    Placement,
    QueryAnswer,
    QueryRequest,
    QueueConfig,
    QueueStats,
    RunLinks,
    RunRecord,
    RunWaitsRecord,
    StreamRecord,
    TaskRecord,
    UpdateOutcome,
    WorkerRecord,
)
from duro.store._schedules import ScheduleStore
from duro.store._tokens import TokenStore

__all__ = ["AdminStore", "ClientStore", "Fenced", "Store", "WorkerStore"]


class Fenced(Exception):
    """A write was refused and wrote nothing: it carried a stale fencing epoch (another
    worker owns the run now), or its events do not continue the stored history (an
    earlier write of the run failed, so this one would leave a gap)."""


class ClientStore(Protocol):
    """What a client uses: start runs, read them and their histories, send them messages
    and updates, read queue loads. (Exceptions: see the module docstring.)"""

    url: str

    async def open(self) -> None:
        """Connect and migrate."""

    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    async def create_run(
        self,
        *,
        run_id: str,
        workflow_id: str,
        workflow_name: str,
        input: bytes,
        now: float,
        owner: str | None,
        on_conflict: IdConflictPolicy,
        on_reuse: IdReusePolicy,
        links: RunLinks | None = None,
        message: Message | None = None,
        placement: Placement | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
        namespace: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """Create a run (and its ``run_started`` event) unless the id policy says not to.

        Returns the run and whether it was created. With ``owner`` set, the run is
        created already claimed by that worker (epoch 1), saving a claim round trip.
        With ``message``, it is put in the (new or existing live) run's inbox in the same
        transaction: signal-with-start and update-with-start (a signal whose
        ``signal_id`` the chain took already, as :meth:`send_message` says, creates and
        stores nothing: the chain's latest run comes back). ``placement`` puts it in a
        queue (priority, concurrency key), delays it, or folds it into a live run with the
        same deduplication key or a pending run with the same debounce key (returned with
        ``created`` False). ``search_attributes`` (checked by the caller) are recorded in
        the ``run_started`` meta and indexed in the same transaction; a start that
        returns an existing run leaves that run's as they are. The run is created in
        ``namespace`` (None: ``"default"``); a run of another namespace holding the
        workflow id (or deduplication key) is never returned: the start is refused as
        taken unless that run ended and ``on_reuse`` is ``"allow"``
        (:func:`duro.store._rules.check_existing`).
        """
        ...

    async def get_run(self, workflow_id: str, run_id: str | None = None, *,
                      namespace: str | None = None) -> RunRecord | None:
        """The latest run of a workflow id (in ``namespace``), or that exact run (None if
        it is of another namespace)."""
        ...

    async def list_runs(
        self, *, status: str | None = None, name: str | None = None, limit: int = 100,
        created_after: float | None = None, created_before: float | None = None,
        id_prefix: str | None = None, attributes: Mapping[str, SearchValue] | None = None,
        after: tuple[float, str] | None = None, namespace: str | None = None,
    ) -> list[RunRecord]:
        """Up to ``limit`` runs, newest first (ties: by run id, descending, in code point
        order), that match every filter given: namespace, status, workflow name, created at or
        after ``created_after`` and before ``created_before``, a workflow id starting
        with ``id_prefix``, each of ``attributes`` (key: value, as indexed; ``12`` and
        ``12.0`` are one value). With ``after`` (a run's ``(created_at, run_id)``), only
        runs after it in that order: the next page of a listing, however many runs were
        started since.
        """
        ...

    async def search_attributes(
        self, run_ids: Sequence[str]
    ) -> dict[str, dict[str, SearchValue]]:
        """The search attributes of these runs, in one read (a run without any is left
        out)."""
        ...

    async def load_history(self, run_id: str) -> list[EventRecord]:
        """All events of a run in order."""
        ...

    async def children(self, run_id: str) -> list[RunRecord]:
        """Runs started as children of this run."""
        ...

    async def run_waits(self, run_id: str) -> RunWaitsRecord:
        """What the run waits for: the waits recorded when it last suspended (see
        :meth:`WorkerStore.append`) and its step tasks not done yet (pending: no worker
        of the step's queue claimed it yet; or claimed)."""
        ...

    async def get_state(self, run_id: str, key: str) -> bytes | None:
        """The latest published value of a key."""
        ...

    async def read_stream(self, run_id: str, from_offset: int = 0,
                          limit: int = 1000) -> list[StreamRecord]:
        """Up to ``limit`` rows of a run's stream from offset ``from_offset``, in order
        (an offset is visible only once every smaller one is)."""
        ...

    async def send_to_run(self, run_id: str, message: Message, *, now: float,
                          namespace: str | None = None) -> RunRecord:
        """Put a message in this exact run's inbox (of ``namespace``) and wake it: not
        in a run that continued it (a step completed from outside, by its token).

        Raises:
            RunNotFoundError: The run does not exist, is of another namespace, or ended.
        """
        ...

    async def send_message(self, workflow_id: str, kind: str, name: str | None,
                           data: bytes | None, *, now: float, meta: bytes | None = None,
                           signal_id: str | None = None,
                           namespace: str | None = None) -> RunRecord:
        """Put a message in a live run's inbox (of ``namespace``) and wake it (``meta``:
        what duro reads about it, e.g. a signal's headers).

        With a ``signal_id``, a signal whose id the workflow id's chain of runs (its
        newest fresh start and the runs continued as new from it) already took is not
        stored again: the call writes nothing and returns the chain's latest run, live or
        not. Concurrent sends of one id store one message."""
        ...

    async def request_update(
        self, workflow_id: str, message: Message, *, now: float, namespace: str | None = None
    ) -> tuple[RunRecord, UpdateOutcome]:
        """Queue an update (idempotent by ``message.update_id``) for a run of
        ``namespace``."""
        ...

    async def get_update(self, run_id: str, update_id: str) -> UpdateOutcome | None:
        """Where an update stands."""
        ...

    async def find_update(self, workflow_id: str, update_id: str, *,
                          namespace: str | None = None) -> tuple[str, UpdateOutcome] | None:
        """The latest run of a workflow id (in ``namespace``) that holds this update
        (continue-as-new carries an update it did not take to the next run), and where it
        stands."""
        ...

    async def queue_stats(self, *, real_now: float,
                          namespace: str | None = None) -> list[QueueStats]:
        """Every queue with runs or limits: depth, running count (of ``namespace``'s runs,
        None: of all), limits and recent starts (deployment-wide: limits are)."""
        ...

    async def stats(self, *, since: float | None = None, workflow: str | None = None,
                    namespace: str | None = None) -> Stats:
        """Analytics of the runs created at or after ``since`` (None: all) of
        ``namespace`` (None: every one) and ``workflow`` (None: every name), aggregated
        in the database from the runs and their step events (see
        :class:`duro.Stats`)."""
        ...

    async def list_workers(self) -> list[WorkerRecord]:
        """Every registered worker (live or with an expired lease not yet cleaned up),
        oldest first, with the number of runs each holds."""
        ...

    async def list_budgets(self, *, namespace: str | None = None, key: str | None = None,
                           limit: int = 100) -> list[BudgetSpend]:
        """The shared budgets' spend per key and window (of ``namespace``, None: every
        one; of ``key``, None: every one), by key then latest window first."""
        ...

    async def set_budget_limit(self, key: str, *, usd: float | None, tokens: int | None,
                               namespace: str, now: float) -> BudgetSpend | None:
        """Set the limits of ``key``'s latest window (an operator's: they replace the
        runs' own; None: back to the runs'). None when the key has no window yet."""
        ...

    async def ask_query(self, query: QueryRequest, *, now: float) -> None:
        """Leave a query for a worker with the workflow's code (it looks at its next
        poll; PostgreSQL's workers are woken at once)."""
        ...

    async def query_answer(self, query_id: str) -> QueryAnswer | None:
        """A query's answer, or None while it has none."""
        ...

    async def forget_query(self, query_id: str) -> None:
        """Delete a query, answered or not (the asker read it, or stopped waiting)."""
        ...


class WorkerStore(ClientStore, Protocol):
    """What a worker uses to execute runs: claims and leases, fenced appends, children
    and continue-as-new, step tasks, parking.

    Every write that changes a run's history checks, in the same transaction, the
    caller's fencing epoch and that its first sequence number is the stored history's
    length, and raises :class:`Fenced` (having written nothing) when either does not
    hold: a history never has a gap, whatever failed before. (Other exceptions: see the
    module docstring.)
    """

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from any thread) when work may have become ready because of
        another process (e.g. PostgreSQL NOTIFY). Returns an unsubscriber. Stores without
        such a channel return a no-op; workers poll as a fallback anyway."""
        ...

    async def append(
        self,
        run_id: str,
        epoch: int,
        first_seq: int,
        events: Sequence[NewEvent],
        *,
        now: float,
        status: str | None = None,
        result: bytes | None = None,
        error: bytes | None = None,
        wake_at: float | None = None,
        release: bool = False,
        consume_inbox_upto: int | None = None,
        waits: str | None = None,
    ) -> None:
        """Append events (numbered from ``first_seq``) and update the run, fenced.

        With ``status="suspended"``, ``waits`` (JSON, ``duro._waits``) is what the run
        waits for now; read back by :meth:`ClientStore.run_waits`.

        In the same transaction: ``state_set``, ``update_*`` and
        ``search_attributes_upserted`` events update the published-state,
        update-outcome and search-attribute tables; a terminal status notifies the parent
        run (a ``child_done`` message) and applies the children's parent-close policy.
        """
        ...

    async def claim(
        self, worker_id: str, names: Sequence[str], limit: int, *, now: float,
        real_now: float, queues: Sequence[str] | None = None,
        local: Mapping[str, int] | None = None, ahead: float = 0.0,
        fair_after: float | None = None,
    ) -> list[Claim]:
        """Claim up to ``limit`` runs that are pending, due, or whose owner's lease expired.

        Only from ``queues`` (all when None), best priority first, within each queue's
        limits; ``local`` is how many runs of each queue this worker holds now (for the
        per-worker limit). With ``ahead`` > 0, room left after those is filled with
        suspended runs of queues without limits that are due within ``ahead`` seconds
        (earliest first): the worker loads them before their timers end so that they
        wake on time. Never a pending run (a delayed start must not begin early).

        With ``fair_after`` (seconds) and other live workers, only this worker's fair
        share of the ready runs (:func:`duro.store._rules.fair_share`): runs ready and
        unchanged for ``fair_after`` seconds are anyone's. Runs of dead workers are taken
        over whatever the share.
        """
        ...

    async def next_wake_at(self, names: Sequence[str]) -> float | None:
        """The earliest ``wake_at`` of a pending or suspended run of these workflows."""
        ...

    async def admit_budget(self, run_id: str, epoch: int, op: int,
                           requests: Sequence[BudgetRequest], *, now: float) -> BudgetVerdict:
        """Admit one attempt of a budgeted step (op ``op`` of the run held at ``epoch``)
        by every shared budget of ``requests``, in one transaction
        (:func:`duro.store._budgets.budget_verdict` for each): if all admit, reserve
        their estimates for it (the reservation holds while the run is running at that
        epoch, until the append of the attempt's outcome charges its spend and releases
        it); else reserve nothing and return the first refusal (``wait``, ``exceeded``)."""
        ...

    async def release_budget(self, run_id: str, epoch: int, op: int,
                             requests: Sequence[BudgetRequest]) -> None:
        """Drop an attempt's reservations (it was abandoned: no outcome will charge it)."""
        ...

    async def load_runs(
        self, run_ids: Sequence[str], *, history: Collection[str] | None = None
    ) -> dict[str, LoadedRun]:
        """Take-up reads for a batch of claimed runs, in one round trip.

        Args:
            run_ids: The runs.
            history: Those of them whose history and heartbeats to load (None: all).

        Returns:
            A ``LoadedRun`` per run id (a run with no events gets an empty history).
        """
        ...

    async def open_queries(self, names: Sequence[str], *, now: float, stale: float,
                           limit: int) -> list[QueryRequest]:
        """Unanswered, unexpired queries of these workflows that no worker claimed since
        ``stale`` (a worker that claims one and dies leaves it to another), oldest
        first. A read: cheap enough for every poll."""
        ...

    async def claim_query(self, query_id: str, worker_id: str, *, now: float,
                          stale: float) -> bool:
        """Take a query to answer it; False when another worker has it."""
        ...

    async def answer_query(self, query_id: str, answer: QueryAnswer, *, now: float) -> None:
        """Record a query's answer (nothing if it was answered, or forgotten)."""
        ...

    async def expire_queries(self, *, now: float) -> int:
        """Delete queries whose askers stopped waiting; how many."""
        ...

    async def read_inbox(self, run_id: str) -> list[InboxMessage]:
        """Unconsumed inbox messages of a run, in arrival order."""
        ...

    async def runs_with_inbox(self, worker_id: str) -> list[str]:
        """Runs this worker owns that have unconsumed messages."""
        ...

    async def reject_update(
        self, run_id: str, update_id: str, message_id: int, *, error: bytes, now: float
    ) -> None:
        """Record a rejected update outside the history and drop its message."""
        ...

    async def save_heartbeat(self, run_id: str, op: int, details: bytes, *, now: float) -> None:
        """Keep a step's last heartbeat details."""
        ...

    async def append_stream(self, run_id: str, op: int, *, step: str, attempt: int,
                            execution: str, first: bool, chunks: Sequence[str], now: float,
                            limit: int) -> int:
        """Append a batch of one execution of step ``op``'s chunks (each its JSON text)
        to the run's stream, in one transaction, at the next offsets; returns how many
        were kept.

        ``execution`` identifies this execution (random, not the attempt number: a lost
        attempt runs again with its number); ``first`` says this is its first batch. A
        new execution's first batch marks the op's earlier chunks superseded and writes
        a ``superseded`` marker; a stale execution's chunks are dropped
        (:func:`~duro.store._rules.stream_plan`). Beyond ``limit`` rows in the run's
        stream nothing is kept, and a ``truncated`` marker is written once.
        """
        ...

    async def release(self, run_id: str, epoch: int, *, now: float) -> None:
        """Give a run back (to pending) without changing its history."""
        ...

    async def park(self, run_id: str, epoch: int, *, error: bytes, code_hash: str,
                   now: float) -> None:
        """Park a run for a code problem, recording why."""
        ...

    async def unpark(self, name: str, code_hash: str, *, now: float) -> int:
        """Make runs parked by other code than ``code_hash`` pending again."""
        ...

    async def mark_trial(self, run_id: str, epoch: int) -> None:
        """Mark a run taken up alone after dying with its workers twice in a row: if its
        worker dies now, the next take-over counts the death against it (see
        :attr:`duro.store.Claim.recoveries`)."""
        ...

    async def time_out(self, run_id: str, epoch: int, *, now: float) -> bool:
        """Close a run whose execution timeout passed; False if it moved on meanwhile."""
        ...

    async def start_child(
        self, parent_run_id: str, epoch: int, seq: int, before: Sequence[NewEvent], *,
        op: int, run_id: str, workflow_id: str, workflow_name: str, input: bytes,
        links: RunLinks, owner: str | None, now: float, placement: Placement | None = None,
        max_depth: int | None = None, search_attributes: Mapping[str, SearchValue] | None = None,
    ) -> tuple[RunRecord | None, NewEvent]:
        """Append ``before``, then start the child (its depth its parent's + 1, with its
        ``search_attributes``) and
        record ``child_started`` — or record ``child_failed`` if its workflow id is
        taken, it would be nested deeper than ``max_depth``, or the database refuses it
        (:class:`~duro.errors.DataRejectedError`) — atomically, fenced."""
        ...

    async def continue_as_new(
        self, run_id: str, epoch: int, seq: int, events: Sequence[NewEvent], *,
        new_run_id: str, input: bytes, owner: str | None, now: float,
        carry: Sequence[Message] = (),
    ) -> RunRecord:
        """Close a run as continued-as-new and start its successor, atomically.

        The successor's inbox gets ``carry`` (messages the run recorded but its code
        never took), then the signals, updates and cancel requests still waiting in the
        run's inbox, in that order (:func:`duro.store._rules.carried_over`).
        """
        ...

    async def enqueue_task(self, task: TaskRecord, *, now: float) -> None:
        """Queue a step attempt for a worker serving its queue (idempotent by task id)."""
        ...

    async def has_tasks(self, queues: Sequence[str] | None, steps: Sequence[str]) -> bool:
        """Whether a task this worker could run is waiting."""
        ...

    async def claim_tasks(self, worker_id: str, queues: Sequence[str] | None,
                          steps: Sequence[str], limit: int, *, real_now: float
                          ) -> list[TaskRecord]:
        """Take up to ``limit`` waiting tasks of these queues and steps."""
        ...

    async def complete_task(self, task: TaskRecord, worker_id: str, data: bytes | None,
                            meta: bytes, *, now: float) -> bool:
        """Mark a task done and send its outcome to the run's inbox, atomically (a
        ``task_done`` message: the result or error in ``data``, ``TaskDone`` in
        ``meta``)."""
        ...

    async def cancel_task(self, task_id: str) -> None:
        """Drop a task nobody has started."""
        ...

    async def upsert_queue(self, config: QueueConfig, *, now: float) -> None:
        """Create or update a queue's limits."""
        ...

    async def register_worker(
        self, worker_id: str, host: str, pid: int, *, real_now: float, lease: float,
        queues: Sequence[str] | None = None,
    ) -> None:
        """Create this worker's lease row, with the queues it serves (None: every one)."""
        ...

    async def renew_worker(self, worker_id: str, *, real_now: float, lease: float) -> bool:
        """Extend the lease; False when the row is gone (we were presumed dead)."""
        ...

    async def worker_pids(self, host: str) -> list[int]:
        """Process ids of the workers registered from this host."""
        ...

    async def expire_dead_workers(self, host: str, dead_pids: Sequence[int]) -> int:
        """Mark leases of workers on this host whose processes are gone as expired."""
        ...

    async def expire_disconnected_workers(self) -> int:
        """Mark as expired the leases of workers, on any host, whose connection to the
        database ended since an earlier call (their process died); returns how many.

        Cheap enough to call a few times a second. Stores that cannot tell (one host,
        no sessions) return 0: the lease and the PID check decide there.
        """
        ...

    async def deregister_worker(self, worker_id: str, *, now: float) -> None:
        """Release this worker's runs to pending and delete its lease."""
        ...

    async def owned_runs(self, worker_id: str) -> list[tuple[str, int]]:
        """(run id, epoch) of every run the store says this worker owns and runs."""
        ...


class AdminStore(ClientStore, Protocol):
    """Operator actions on runs (the CLI's ``terminate``, ``resume``, ``reset``, ``retry``,
    ``fork``)."""

    async def terminate(self, workflow_id: str, *, reason: str, now: float,
                        namespace: str | None = None) -> RunRecord:
        """Stop a live run (of ``namespace``) at once, fencing out its owner."""
        ...

    async def resume_parked(self, workflow_id: str, *, now: float,
                            namespace: str | None = None) -> RunRecord:
        """Make a parked run (of ``namespace``) pending again (after its code or data was
        fixed)."""
        ...

    async def copy_run(
        self, source_run_id: str, *, upto_seq: int, drop_ops: Sequence[int], new_run_id: str,
        workflow_id: str, close_source: bool, reason: str, now: float,
        namespace: str | None = None,
    ) -> RunRecord:
        """Start a new run from a prefix of another's history (reset, retry, fork), in
        the source's namespace (a source of another namespace than ``namespace``:
        :class:`~duro.errors.RunNotFoundError`)."""
        ...


class Store(WorkerStore, AdminStore, ScheduleStore, TokenStore, CacheStore, ApprovalStore,
            GraphCheckpointStore, Protocol):
    """Every store operation: what an :class:`~duro.Engine` uses (client, worker, admin
    and schedules in one process)."""
