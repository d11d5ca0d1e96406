"""Steps of a write that several store operations share, each inside the caller's
transaction: creating runs, sending messages, projecting events into read models,
closing runs (with their parent notification, children policy and tasks).

Each keeps the rule of ``_tx.py``: it raises only before it wrote anything, so a caller
may go on writing after catching its errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from duro._history import (
    PROJECTED_KINDS,
    STREAM_KINDS,
    UPDATE_STATUS,
    ApprovalMeta,
    EventKind,
    SearchAttributesMeta,
    SearchValue,
    UpdateMeta,
)
from duro._history import terminal_kind as _terminal_kind
from duro._messages import MessageKind
from duro.errors import RunNotFoundError, StoreError
from duro.store._base._tx import Later, Tx
from duro.store._records import (
    LIVE_STATUSES,
    IdConflictPolicy,
    IdReusePolicy,
    Message,
    NewEvent,
    Placement,
    RunLinks,
    RunRecord,
    StreamKind,
)
from duro.store._rows import Row, inbox_message, run_record
from duro.store._rules import (
    PARENT_CLOSED,
    Link,
    NewRun,
    attribute_params,
    carried_over,
    check_existing,
    closing_effects,
    debounce_until,
    dedup_hit,
    in_namespace,
    plan_run,
    stream_lock_key,
    taken,
)

__all__ = ["close", "create_run", "fence", "fetch_run", "live_row", "live_run", "live_run_id",
           "move_inbox", "on_closed", "projection", "send", "signal_seen",
           "workflow_stream_row"]

_UPTO_ALL = 2**62
"""``consume_inbox``'s bound for "every message"."""


async def fetch_run(tx: Tx, run_id: str, namespace: str | None = None) -> RunRecord | None:
    """A run by its id, read in the transaction (None for a run of another namespace
    than ``namespace``, as for none)."""
    row = await tx.one("run_by_id", {"run_id": run_id})
    if row is None or not in_namespace(row["namespace"], namespace):
        return None
    return run_record(row)


async def live_run(tx: Tx, workflow_id: str, namespace: str | None = None) -> Row | None:
    """The live run's row of a workflow id, if it is in ``namespace`` (None: any)."""
    row = await tx.one("live_run_by_workflow_id", {"workflow_id": workflow_id})
    return row if row is not None and in_namespace(row["namespace"], namespace) else None


async def live_run_id(tx: Tx, workflow_id: str, namespace: str | None = None) -> str:
    """The live run of a workflow id (or of a run id given in its place) in
    ``namespace`` (None: any).

    Raises:
        RunNotFoundError: None is live (in the namespace: one of another namespace is
            not there for this caller).
    """
    return str((await live_row(tx, workflow_id, namespace))["run_id"])


async def live_row(tx: Tx, workflow_id: str, namespace: str | None = None) -> Row:
    """:func:`live_run_id`'s row: the whole run.

    Raises:
        RunNotFoundError: None is live (in the namespace).
    """
    row = await tx.one("live_run_by_workflow_id", {"workflow_id": workflow_id})
    if row is None:
        row = await tx.one("run_by_id", {"run_id": workflow_id})
        if row is not None and row["status"] not in LIVE_STATUSES:
            row = None
    if row is None or not in_namespace(row["namespace"], namespace):
        raise RunNotFoundError(f"no live run with workflow id {workflow_id!r}")
    return row


async def _absorb(tx: Tx, placement: Placement, input: bytes, now: float,
                  namespace: str | None) -> RunRecord | None:
    """An existing run that absorbs this start (same deduplication or debounce key): a
    deduplication key is unique in its queue across namespaces (one of another
    namespace refuses the start), a debounce key folds only starts of one namespace."""
    if placement.dedup_key is not None:
        row = await tx.one("live_dedup", {"queue": placement.queue, "key": placement.dedup_key})
        if row is not None:
            return dedup_hit(placement, run_record(row), namespace)
    if placement.debounce_key is not None:
        row = await tx.one("pending_debounce", {"queue": placement.queue,
                                                "key": placement.debounce_key,
                                                "namespace": namespace})
        if row is not None:
            got = await tx.one("debounce_again", {
                "input": input, "now": now, "wake_at": debounce_until(placement, now),
                "run_id": row["run_id"]})
            return run_record(got or row)
    return None


async def _created(tx: Tx, new: NewRun,
                   search_attributes: Mapping[str, SearchValue] | None) -> tuple[RunRecord, bool]:
    """The run ``insert_run`` just wrote, its search attributes indexed."""
    if search_attributes:
        await tx.run("put_search_attributes", {
            "run_id": new.run_id, "created_at": new.now,
            **attribute_params(search_attributes)})
    return new.record(), True


async def create_run(
    tx: Tx, *, run_id: str, workflow_id: str, workflow_name: str, input: bytes, now: float,
    owner: str | None, on_conflict: IdConflictPolicy, on_reuse: IdReusePolicy,
    links: RunLinks | None, placement: Placement | None = None, started_event: bool = True,
    search_attributes: Mapping[str, SearchValue] | None = None,
    planned: NewRun | None = None, namespace: str | None = None, stamp: str | None = None,
) -> tuple[RunRecord, bool]:
    """Create a run (and its ``run_started`` event) unless its workflow id's policies, a
    deduplication key or a debounce key say otherwise; (the run, whether created). Its
    ``search_attributes`` are indexed with it (a start they do not create keeps the
    existing run's); without any, nothing more is written. ``planned``: the new run as
    :func:`~duro.store._rules.plan_run` makes it from these arguments, made by the caller
    (outside the writer, which then only writes).

    ``namespace``: the caller's (None: it sees every namespace); a run of another one is
    never returned (:func:`~duro.store._rules.check_existing`). The new run is in
    ``stamp``, by default ``namespace`` (or ``"default"``)."""
    if placement is not None:
        found = await _absorb(tx, placement, input, now, namespace)
        if found is not None:
            return found, False
    new = planned or plan_run(
        run_id=run_id, workflow_id=workflow_id, workflow_name=workflow_name, input=input,
        now=now, owner=owner, links=links, placement=placement,
        search_attributes=search_attributes, namespace=stamp or namespace)
    # Most starts are of an id no run ever had: then no policy applies, and the insert
    # alone does it (one statement instead of a lookup and an insert: the HTTP start's
    # hot path, docs/benchmarks.md). Otherwise it writes nothing, and the id's runs
    # decide below, as if it had not been tried.
    if await tx.one("insert_run", new.params(started_event=started_event,
                                             fresh=True)) is not None:
        return await _created(tx, new, search_attributes)
    # The id's latest run in any namespace: ids are unique across namespaces.
    row = await tx.one("latest_run_by_workflow_id", {"workflow_id": workflow_id,
                                                     "namespace": None})
    if row is not None:
        existing, create = check_existing(run_record(row), workflow_id, workflow_name,
                                          on_conflict, on_reuse, namespace)
        if not create:
            return existing, False
    if await tx.one("insert_run", new.params(started_event=started_event)) is not None:
        return await _created(tx, new, search_attributes)
    # Another process started a live run with this id (or deduplication key) a moment
    # ago (PostgreSQL; a SQLite writer holds the file's lock): nothing was written; answer
    # as if we had seen it first.
    if placement is not None:
        found = await _absorb(tx, placement, input, now, namespace)
        if found is not None:
            return found, False
    row = await tx.one("latest_run_by_workflow_id", {"workflow_id": workflow_id,
                                                     "namespace": None})
    if row is None:
        raise StoreError(f"could not create run {run_id!r} (its id is taken)")
    found, _ = check_existing(run_record(row), workflow_id, workflow_name, on_conflict,
                              on_reuse, namespace)
    if not in_namespace(found.namespace, namespace):  # it ended again meanwhile
        raise taken(workflow_id)
    return found, False


async def send(tx: Tx, run_id: str, message: Message, now: float) -> Later:
    """Put a message in a live run's inbox (and an update request's row, a signal id's
    row) and wake the run if it is suspended; a signal whose id the run has already is
    not stored again. The result's first row is the run after it, or None (and nothing
    was written) if the run was no longer live."""
    return await tx.later("send_message", {
        "run_id": run_id, "kind": message.kind, "name": message.name, "data": message.data,
        "meta": message.meta, "update_id": message.update_id,
        "signal_id": message.signal_id, "now": now})


async def signal_seen(tx: Tx, workflow_id: str, signal_id: str | None,
                      namespace: str | None = None) -> RunRecord | None:
    """The workflow id's latest run if its chain of runs already took this signal id
    (None: it did not, or no id, or that run is of another namespace than
    ``namespace``). Read after the caller looked up the run it sends to: an earlier run
    of the chain that took the id had taken it before it ended, so before that lookup
    (the primary key of ``signal_ids`` settles races for the same run)."""
    if signal_id is None:
        return None
    row = await tx.one("find_signal", {"workflow_id": workflow_id, "signal_id": signal_id})
    if row is None or not in_namespace(row["namespace"], namespace):
        return None
    return run_record(row)


async def move_inbox(tx: Tx, old: str, new: str, carry: Sequence[Message], now: float) -> None:
    """At continue-as-new: give the successor ``carry`` and what waits in the old run's
    inbox (:func:`~duro.store._rules.carried_over`), update rows following updates. The
    old run's row is locked by this transaction's fence, so no message can slip in."""
    inbox = [inbox_message(r) for r in await tx.all("read_inbox", {"run_id": old})]
    moved = carried_over(carry, inbox)
    await tx.run("consume_inbox", {"run_id": old, "upto": _UPTO_ALL})
    for message in moved:
        if message.update_id is not None:
            await tx.run("delete_update", {"run_id": old, "update_id": message.update_id})
        await send(tx, new, message, now)


def workflow_stream_row(event: NewEvent) -> dict[str, Any]:
    """The stream row's kind and data of workflow code's ``stream_written`` (the value's
    JSON text) or ``stream_closed`` (a ``closed`` marker) event."""
    chunk = event.kind == EventKind.STREAM_WRITTEN
    return {"kind": (StreamKind.CHUNK if chunk else StreamKind.CLOSED).value,
            "data": event.data.decode() if chunk and event.data is not None else None}


def projection(run_id: str, epoch: int, new_len: int,
               event: NewEvent) -> tuple[str, dict[str, Any]] | None:
    """The read-model write that goes with an appended event (published state, an
    update's outcome, search attributes, an approval requested or timed out); its
    statement applies only if the append's fence passed."""
    if event.kind not in PROJECTED_KINDS:
        return None
    fence = {"run_id": run_id, "epoch": epoch, "new_len": new_len, "ts": event.ts}
    if event.kind == EventKind.STATE_SET:
        return "upsert_state", {**fence, "key": event.name, "value": event.data}
    if event.kind == EventKind.APPROVAL_REQUESTED:
        requested = ApprovalMeta.decode(event.meta)
        return "insert_approval", {**fence, "approval_id": requested.approval_id,
                                   "op": event.op, "name": event.name, "context": event.data,
                                   "deadline_at": requested.deadline_at}
    if event.kind == EventKind.APPROVAL_TIMED_OUT:
        return "time_out_approval", {**fence,
                                      "approval_id": ApprovalMeta.decode(event.meta).approval_id}
    if event.kind in STREAM_KINDS:
        return "stream_put", {**fence, "key": stream_lock_key(run_id),
                              **workflow_stream_row(event)}
    if event.kind == EventKind.SEARCH_ATTRIBUTES_UPSERTED:
        changes = SearchAttributesMeta.decode(event.meta).attributes
        return "upsert_search_attributes", {**fence, **attribute_params(changes)}
    update_id = UpdateMeta.update_id_of(event.meta)
    if update_id is None:
        return None
    return "set_update", {
        **fence, "update_id": update_id, "status": UPDATE_STATUS[event.kind],
        "result": event.data if event.kind == EventKind.UPDATE_COMPLETED else None,
        "error": event.data if event.kind == EventKind.UPDATE_FAILED else None}


async def fence(tx: Tx, run_id: str, epoch: int, first_seq: int, events: Sequence[NewEvent],
                now: float, *, reserve: int = 0) -> int:
    """Append ``events`` fenced, with their projections, checking the fence now. With
    ``reserve``, the history's length also counts that many events the caller inserts
    next. Returns the sequence number after ``events``.

    Raises:
        Fenced: The epoch is stale or the history moved on (nothing was written).
    """
    passed = await tx.append(run_id, epoch, first_seq, events, now=now, reserve=reserve)
    await passed.check()
    at = first_seq + len(events)
    for e in events:
        if (write := projection(run_id, epoch, at + reserve, e)) is not None:
            await run_projection(tx, write)
    return at


async def run_projection(tx: Tx, write: tuple[str, dict[str, Any]]) -> None:
    """Run one of :func:`projection`'s writes. A value for the run's stream takes the
    stream's lock first, in a statement of its own (so that its offset, MAX + 1, is read
    after the lock): one writer of a run's stream at a time, steps' chunks included."""
    query, params = write
    if query == "stream_put":
        await tx.run("stream_lock", params)
    await tx.run(query, params)


async def close(tx: Tx, run_id: str, status: str, error: bytes, now: float, *,
                epoch: int | None = None) -> RunRecord | None:
    """End a live run from outside its worker (terminate, time out), fencing it out;
    None (nothing written) when it was not live (or not at ``epoch``)."""
    record = await _close_row(tx, run_id, status, error, now, epoch=epoch)
    if record is not None:
        await on_closed(tx, run_id, status, None, error, now)
    return record


async def _close_row(tx: Tx, run_id: str, status: str, error: bytes, now: float, *,
                     epoch: int | None = None) -> RunRecord | None:
    """The run's own part of :func:`close`: its status, closing event and leftovers."""
    row = await tx.one("close_run", {"run_id": run_id, "status": status, "error": error,
                                     "now": now, "epoch": epoch,
                                     "kind": _terminal_kind(status)})
    return None if row is None else run_record(row)


def _link(row: Any) -> Link:
    return Link(kind=row["kind"], run_id=row["run_id"], status=row["status"],
                parent_op=row["parent_op"], policy=row["policy"],
                cancelling=bool(row["cancelling"]))


async def on_closed(tx: Tx, run_id: str, status: str, result: bytes | None,
                    error: bytes | None, now: float, links: Later | None = None) -> None:
    """A run ended: drop its step tasks, close its pending approvals, and apply
    :func:`~duro.store._rules.closing_effects` — tell its live parent, cancel or
    terminate its children by their policies (and, for children it terminates, theirs,
    down the tree). ``links``: the run's ``closing_links``, if already queued.

    A loop over the runs to close, not a recursion: a chain of a thousand nested
    children (~450 overflowed Python's stack) closes in this same transaction."""
    closing: list[tuple[str, str, bytes | None, bytes | None, Later | None]] = [
        (run_id, status, result, error, links)]
    while closing:
        closed, how, res, err, pending = closing.pop()
        await tx.run("delete_tasks_of_run", {"run_id": closed})
        await tx.run("close_approvals", {"run_id": closed, "now": now})
        rows = await pending.rows() if pending is not None else \
            await tx.all("closing_links", {"run_id": closed})
        effects = closing_effects(closed, how, res, err, map(_link, rows))
        if effects.tell_parent is not None:
            await send(tx, *effects.tell_parent, now)
        for child in effects.cancel:
            await send(tx, child, Message(kind=MessageKind.CANCEL), now)
        for child in effects.terminate:
            if await _close_row(tx, child, "terminated", PARENT_CLOSED, now) is not None:
                closing.append((child, "terminated", None, PARENT_CLOSED, None))

