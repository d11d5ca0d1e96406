"""Operations of the SQLite store that run inside the writer's transactions and are
shared by several store methods: creating runs, sending messages, projecting events into
read models, and closing runs (with their parent notification and children policy)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from duro._history import (
    PROJECTED_KINDS,
    UPDATE_STATUS,
    EventKind,
    MessageKind,
    RunStartedMeta,
    UpdateMeta,
    terminal_kind,
)
from duro.errors import RunNotFoundError, WorkflowAlreadyStartedError
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
    run_record,
)
from duro.store.sqlite._sql import queries

__all__ = ["SIDE_EFFECT_KINDS", "close", "create_run", "live_run_id", "move_inbox",
           "on_closed", "project", "row_to_run", "send"]

_Q = queries()


def row_to_run(row: sqlite3.Row) -> RunRecord:
    return run_record(row)


SIDE_EFFECT_KINDS = PROJECTED_KINDS


def create_run(
    conn: sqlite3.Connection, *, run_id: str, workflow_id: str, workflow_name: str,
    input: bytes, now: float, owner: str | None, on_conflict: IdConflictPolicy,
    on_reuse: IdReusePolicy, links: RunLinks | None, started_event: bool = True,
    placement: Placement | None = None,
) -> tuple[RunRecord, bool]:
    if placement is not None:
        found = _dedup_or_debounce(conn, placement, input, now)
        if found is not None:
            return found, False
        if not placement.immediate:
            owner = None  # it waits for its time: a worker claims it then
    row = conn.execute(_Q["latest_run_by_workflow_id"], (workflow_id,)).fetchone()
    if row is not None:
        existing, create = check_existing(
            row_to_run(row), workflow_id, workflow_name, on_conflict, on_reuse)
        if not create:
            return existing, False
    status = "running" if owner else "pending"
    epoch = 1 if owner else 0
    wake_at = None if owner else now
    if placement is not None:
        if placement.start_at is not None:
            wake_at = max(now, placement.start_at)
        elif placement.debounce_key is not None:
            wake_at = now + placement.debounce
    conn.execute(_Q["insert_run"], (run_id, workflow_id, workflow_name, status, input, now,
                                    now, wake_at, owner, epoch))
    if placement is not None:
        conn.execute(_Q["set_placement"], (placement.queue, placement.priority,
                                           placement.concurrency_key, placement.dedup_key,
                                           placement.debounce_key, run_id))
    if owner:
        conn.execute("UPDATE runs SET started_at = ? WHERE run_id = ?", (now, run_id))
    if started_event:
        meta = None if links is None else RunStartedMeta(
            parent_run_id=links.parent_run_id, parent_op=links.parent_op,
            deadline_at=links.deadline_at).encode()
        conn.execute(_Q["insert_event"],
                     (run_id, 0, EventKind.RUN_STARTED, None, workflow_name, now, input, meta))
    if links is not None:
        conn.execute(_Q["set_run_links"], (links.parent_run_id, links.parent_op,
                                           links.parent_close, links.deadline_at,
                                           links.origin_run_id, links.depth, run_id))
    return row_to_run(conn.execute(_Q["run_by_id"], (run_id,)).fetchone()), True


def _dedup_or_debounce(conn: sqlite3.Connection, placement: Placement, input: bytes,
                       now: float) -> RunRecord | None:
    """An existing run that absorbs this start (same dedup or debounce key), if any."""
    if placement.dedup_key is not None:
        row = conn.execute(_Q["live_dedup"], (placement.queue, placement.dedup_key)).fetchone()
        if row is not None:
            existing = row_to_run(row)
            if placement.on_dedup == "fail":
                raise WorkflowAlreadyStartedError(
                    f"a live run ({existing.workflow_id}) already has deduplication key "
                    f"{placement.dedup_key!r} in queue {placement.queue!r}",
                    workflow_id=existing.workflow_id, run_id=existing.run_id)
            return existing
    if placement.debounce_key is not None:
        row = conn.execute(_Q["pending_debounce"], (placement.queue, placement.debounce_key)
                           ).fetchone()
        if row is not None:
            # Not started yet, so nothing has read its input: the last start's wins, and
            # the quiet period starts over.
            conn.execute(_Q["debounce_again"], (input, now + placement.debounce, now,
                                                row["run_id"]))
            conn.execute(_Q["debounce_input"], (input, now, row["run_id"]))
            return row_to_run(conn.execute(_Q["run_by_id"], (row["run_id"],)).fetchone())
    return None


def live_run_id(conn: sqlite3.Connection, workflow_id: str) -> str:
    row = conn.execute(_Q["live_run_by_workflow_id"], (workflow_id,)).fetchone()
    if row is None:
        row = conn.execute(_Q["run_by_id"], (workflow_id,)).fetchone()
        if row is None or row["status"] not in LIVE_STATUSES:
            raise RunNotFoundError(f"no live run with workflow id {workflow_id!r}")
    return str(row["run_id"])


def send(conn: sqlite3.Connection, run_id: str, message: Message, now: float) -> None:
    if message.update_id is not None:
        conn.execute(_Q["insert_update"], (run_id, message.update_id, message.name, now))
    conn.execute(_Q["insert_inbox"], (run_id, message.kind, message.name, message.data,
                                      message.meta, now))
    conn.execute(_Q["wake_for_inbox"], (now, now, run_id))


def move_inbox(conn: sqlite3.Connection, old: str, new: str, carry: Sequence[Message],
               now: float) -> None:
    """At continue-as-new: give the successor ``carry`` and what waits in the old run's
    inbox (:func:`duro.store._policy.carried_over`), update rows following updates."""
    rows = conn.execute(_Q["read_inbox"], (old,)).fetchall()
    moved = carried_over(carry, (InboxMessage(id=r[0], kind=r[1], name=r[2], data=r[3],
                                              meta=r[4]) for r in rows))
    conn.execute(_Q["consume_inbox"], (old, 2**62))
    for message in moved:
        if message.update_id is not None:
            conn.execute(_Q["delete_update"], (old, message.update_id))
        send(conn, new, message, now)


def project(conn: sqlite3.Connection, run_id: str, event: NewEvent) -> None:
    """Keep the read models (published state, update outcomes) in step with the history."""
    if event.kind == EventKind.STATE_SET:
        conn.execute(_Q["upsert_state"], (run_id, event.name, event.data, event.ts))
        return
    update_id = UpdateMeta.update_id_of(event.meta)
    if update_id is None:
        return
    status = UPDATE_STATUS[event.kind]
    result = event.data if event.kind == EventKind.UPDATE_COMPLETED else None
    error = event.data if event.kind == EventKind.UPDATE_FAILED else None
    conn.execute(_Q["set_update"], (status, result, error, event.ts, run_id, update_id))


def close(conn: sqlite3.Connection, run_id: str, status: str, error: bytes,
           now: float) -> None:
    """End a live run from outside its worker (terminate, time out), fencing it out."""
    _close_row(conn, run_id, status, error, now)
    on_closed(conn, run_id, status, None, error, now)


def _close_row(conn: sqlite3.Connection, run_id: str, status: str, error: bytes,
               now: float) -> None:
    """The run's own part of :func:`close`: its status, closing event and leftovers."""
    row = conn.execute(_Q["run_by_id"], (run_id,)).fetchone()
    seq = row["history_len"]
    conn.execute(_Q["close_run"], (status, error, now, now, run_id))
    conn.execute(_Q["insert_event"], (run_id, seq, terminal_kind(status), None, None, now,
                                      error, None))
    conn.execute(_Q["delete_heartbeats"], (run_id,))
    conn.execute(_Q["consume_inbox"], (run_id, 2**62))


def on_closed(conn: sqlite3.Connection, run_id: str, status: str, result: bytes | None,
               error: bytes | None, now: float) -> None:
    """A run ended: tell its parent, apply its children's parent-close policy (and, for
    children it terminates, theirs, down the tree), and drop its step tasks.

    A loop over the runs to close, not a recursion: a chain of a thousand nested
    children (~450 overflowed Python's stack) closes in this same transaction."""
    if status != "continued_as_new":
        _tell_parent(conn, run_id, status, result, error, now)
    closing = [run_id]
    while closing:
        closed = closing.pop()
        conn.execute(_Q["delete_tasks_of_run"], (closed,))
        # Its children's parent is closed now: none of them tells it anything.
        for child_id, _, policy in conn.execute(_Q["live_children"], (closed,)).fetchall():
            if policy == "abandon":
                continue
            cancelling = conn.execute(_Q["cancel_pending"], (child_id,)).fetchone()[0]
            if cancelling:
                continue  # already cleaning up after a cancel request: let it finish
            if policy == "request_cancel":
                send(conn, child_id, Message(kind=MessageKind.CANCEL), now)
            else:
                _close_row(conn, child_id, "terminated", PARENT_CLOSED, now)
                closing.append(child_id)


def _tell_parent(conn: sqlite3.Connection, run_id: str, status: str, result: bytes | None,
                 error: bytes | None, now: float) -> None:
    """Send a ``child_done`` message to the run's parent, if it has a live one."""
    parent = conn.execute(_Q["parent_of"], (run_id,)).fetchone()
    if parent is None or parent[0] is None or parent[2] not in LIVE_STATUSES:
        return
    send(conn, parent[0], child_done(run_id, parent[1], status, result, error), now)
