"""Operations of the PostgreSQL store that run inside the writer's transactions and are
shared by several store methods: creating runs (with their placement), sending messages,
and closing runs (with their parent notification, children policy and tasks).

They follow the writer's rule: each raises only before it wrote anything (see
``_writer``), so callers may go on writing after catching their errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from duro._history import MessageKind, RunStartedMeta, terminal_kind
from duro.errors import StoreError, WorkflowAlreadyStartedError
from duro.store._policy import PARENT_CLOSED, carried_over, check_existing, child_done
from duro.store._records import (
    LIVE_STATUSES,
    IdConflictPolicy,
    IdReusePolicy,
    InboxMessage,
    Message,
    NewEvent,
    Placement,
    RunLinks,
    RunRecord,
    RunStatus,
    run_record,
)
from duro.store.postgres._arrays import event_columns
from duro.store.postgres._sql import queries

__all__ = ["close", "create_run", "event_arrays", "fetch_run", "move_inbox", "on_closed",
           "row_to_run", "send"]

_Q = queries()
Conn = psycopg.AsyncConnection[Any]


def row_to_run(row: dict[str, Any]) -> RunRecord:
    return run_record(row)


async def _one(conn: Conn, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_Q[name], params)
    return await cur.fetchone()


async def fetch_run(conn: Conn, run_id: str) -> RunRecord | None:
    row = await _one(conn, "run_by_id", {"run_id": run_id})
    return row_to_run(row) if row else None


def event_arrays(run_id: str, first_seq: int, events: Sequence[NewEvent]) -> dict[str, Any]:
    """The parameters of ``insert_events`` / ``append`` for these events."""
    return {"run_id": run_id, **event_columns(first_seq, events)}


async def _dedup_or_debounce(conn: Conn, placement: Placement, input: bytes,
                             now: float) -> RunRecord | None:
    """An existing run that absorbs this start (same dedup or debounce key), if any."""
    if placement.dedup_key is not None:
        row = await _one(conn, "live_dedup", {"queue": placement.queue,
                                              "key": placement.dedup_key})
        if row is not None:
            existing = row_to_run(row)
            if placement.on_dedup == "fail":
                raise WorkflowAlreadyStartedError(
                    f"a live run ({existing.workflow_id}) already has deduplication key "
                    f"{placement.dedup_key!r} in queue {placement.queue!r}",
                    workflow_id=existing.workflow_id, run_id=existing.run_id)
            return existing
    if placement.debounce_key is not None:
        row = await _one(conn, "pending_debounce", {"queue": placement.queue,
                                                    "key": placement.debounce_key})
        if row is not None:
            got = await _one(conn, "debounce_again", {
                "input": input, "now": now, "wake_at": now + placement.debounce,
                "run_id": row["run_id"]})
            return row_to_run(got or row)
    return None


async def create_run(
    conn: Conn, *, run_id: str, workflow_id: str, workflow_name: str, input: bytes,
    now: float, owner: str | None, on_conflict: IdConflictPolicy, on_reuse: IdReusePolicy,
    links: RunLinks | None, placement: Placement | None = None, started_event: bool = True,
) -> tuple[RunRecord, bool]:
    """Create a run unless its id policy, deduplication or debounce key says otherwise
    (as the SQLite store's ``create_run``)."""
    if placement is not None:
        found = await _dedup_or_debounce(conn, placement, input, now)
        if found is not None:
            return found, False
        if not placement.immediate:
            owner = None  # it waits for its time: a worker claims it then
    row = await _one(conn, "latest_run_by_workflow_id", {"workflow_id": workflow_id})
    if row is not None:
        found, create = check_existing(
            row_to_run(row), workflow_id, workflow_name, on_conflict, on_reuse)
        if not create:
            return found, False
    links = links or RunLinks()
    place = placement or Placement()
    status = "running" if owner else "pending"
    epoch = 1 if owner else 0
    wake_at = None if owner else now
    if place.start_at is not None:
        wake_at = max(now, place.start_at)
    elif place.debounce_key is not None:
        wake_at = now + place.debounce
    meta = RunStartedMeta(parent_run_id=links.parent_run_id, parent_op=links.parent_op,
                          deadline_at=links.deadline_at).encode()
    params = {"run_id": run_id, "workflow_id": workflow_id, "workflow_name": workflow_name,
              "status": status, "input": input, "now": now, "wake_at": wake_at,
              "owner": owner, "epoch": epoch, "meta": meta,
              "parent_run_id": links.parent_run_id, "parent_op": links.parent_op,
              "parent_close": links.parent_close, "deadline_at": links.deadline_at,
              "origin_run_id": links.origin_run_id, "queue": place.queue,
              "priority": place.priority, "concurrency_key": place.concurrency_key,
              "dedup_key": place.dedup_key, "debounce_key": place.debounce_key,
              "started_at": now if owner else None, "started_event": started_event,
              "depth": links.depth}
    cur = await conn.execute(_Q["insert_run"], params)
    if await cur.fetchone() is None:
        # Another process started a live run with this id (or dedup key) a moment ago:
        # nothing was written; answer as if we had seen it first.
        if placement is not None:
            found_run = await _dedup_or_debounce(conn, placement, input, now)
            if found_run is not None:
                return found_run, False
        row = await _one(conn, "latest_run_by_workflow_id", {"workflow_id": workflow_id})
        if row is None:
            raise StoreError(f"could not create run {run_id!r} (its id is taken)")
        found, _ = check_existing(
            row_to_run(row), workflow_id, workflow_name, on_conflict, on_reuse)
        return found, False
    record = RunRecord(
        run_id=run_id, workflow_id=workflow_id, workflow_name=workflow_name,
        status=RunStatus(status), input=input, result=None, error=None, created_at=now,
        updated_at=now, closed_at=None, wake_at=wake_at, owner=owner, epoch=epoch,
        history_len=1, parent_run_id=links.parent_run_id, parent_op=links.parent_op,
        parent_close=links.parent_close, deadline_at=links.deadline_at,
        origin_run_id=links.origin_run_id, queue=place.queue, priority=place.priority,
        concurrency_key=place.concurrency_key, depth=links.depth)
    return record, True


async def send(conn: Conn, run_id: str, message: Message,
               now: float) -> psycopg.AsyncCursor[dict[str, Any]]:
    """Queue a message for a live run (and its update row) and wake it; the cursor yields
    the run after the message, or nothing (and nothing was written) if it was no longer
    live."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_Q["send_message"], {"run_id": run_id, "kind": message.kind,
                                           "name": message.name, "data": message.data,
                                           "meta": message.meta,
                                           "update_id": message.update_id, "now": now})
    return cur


async def move_inbox(conn: Conn, old: str, new: str, carry: Sequence[Message],
                     now: float) -> None:
    """At continue-as-new: give the successor ``carry`` and what waits in the old run's
    inbox (:func:`duro.store._policy.carried_over`), update rows following updates. The
    old run's row is locked by this transaction's fence, so no message can slip in."""
    cur = await conn.execute(_Q["read_inbox"], {"run_id": old})
    moved = carried_over(carry, (InboxMessage(id=r[0], kind=r[1], name=r[2], data=r[3],
                                              meta=r[4]) for r in await cur.fetchall()))
    await conn.execute(_Q["consume_inbox"], {"run_id": old, "upto": 2**62})
    for message in moved:
        if message.update_id is not None:
            await conn.execute(_Q["delete_update"], {"run_id": old,
                                                     "update_id": message.update_id})
        await send(conn, new, message, now)


async def close(conn: Conn, run_id: str, status: str, error: bytes, now: float,
                *, epoch: int | None = None) -> RunRecord | None:
    """End a live run from outside its worker (terminate, time out), fencing it out; None
    (nothing written) when it was not live (or not at ``epoch``)."""
    record = await _close_row(conn, run_id, status, error, now, epoch=epoch)
    if record is not None:
        await on_closed(conn, run_id, status, None, error, now)
    return record


async def _close_row(conn: Conn, run_id: str, status: str, error: bytes,
                     now: float, *, epoch: int | None = None) -> RunRecord | None:
    """The run's own part of :func:`close`: its status, closing event and leftovers."""
    row = await _one(conn, "close_run", {"run_id": run_id, "error": error, "now": now,
                                         "status": status, "epoch": epoch,
                                         "kind": terminal_kind(status)})
    return None if row is None else row_to_run(row)


async def closing_links(conn: Conn, run_id: str) -> psycopg.AsyncCursor[dict[str, Any]]:
    """Queue the read of what a run's end affects (see :func:`on_closed`)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_Q["closing_links"], {"run_id": run_id})
    return cur


async def on_closed(conn: Conn, run_id: str, status: str, result: bytes | None,
                    error: bytes | None, now: float,
                    links: psycopg.AsyncCursor[dict[str, Any]] | None = None) -> None:
    """A run ended: tell its parent, apply its children's parent-close policy (and, for
    children it terminates, theirs, down the tree), and drop its step tasks. ``links``:
    the :func:`closing_links` cursor, if already queued.

    A loop over the runs to close, not a recursion: a chain of a thousand nested
    children (~450 overflowed Python's stack) closes in this same transaction."""
    closing = [(run_id, links)]
    while closing:
        closed, cur = closing.pop()
        await conn.execute(_Q["delete_tasks_of_run"], {"run_id": closed})
        if cur is None:
            cur = await closing_links(conn, closed)
        for row in await cur.fetchall():
            if row["kind"] == "parent":
                # Only the run that ended first has a parent that may be live: the
                # parent of each child closed here is closed already.
                if (closed == run_id and status != "continued_as_new"
                        and row["status"] in LIVE_STATUSES):
                    await send(conn, row["run_id"], child_done(
                        run_id, row["parent_op"], status, result, error), now)
                continue
            policy = row["policy"]
            if policy == "abandon" or row["cancelling"]:
                continue  # a child already cleaning up after a cancel request may finish
            if policy == "request_cancel":
                await send(conn, row["run_id"], Message(kind=MessageKind.CANCEL), now)
            elif await _close_row(conn, row["run_id"], "terminated", PARENT_CLOSED,
                                  now) is not None:
                closing.append((row["run_id"], None))
