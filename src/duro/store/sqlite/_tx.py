"""The shared store's transaction (:class:`~duro.store._base.Tx`) on a SQLite connection.

Nothing here waits: every method runs its statements at once on the writer's
connection, so an operation (a coroutine) runs to its end in one step, on the writer's
thread or inline (:func:`sqlite_op`), without an event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any

import orjson

from duro.store._base import Op, Params, run_op
from duro.store._protocol import Fenced
from duro.store._records import NewEvent
from duro.store._rows import Row
from duro.store.sqlite._sql import queries

__all__ = ["SqliteTx", "bind", "fenced_append", "insert_run", "sqlite_op"]

_Q = queries()
_FENCE_APPEND = _Q["fence_append"]
_FENCE_TRANSITION = _Q["fence_transition"]
_INSERT_EVENT = _Q["insert_event"]
_CONSUME = _Q["consume_inbox"]
_DROP_HEARTBEATS = _Q["delete_heartbeats"]


@cache
def _statements(name: str) -> tuple[str, ...]:
    """A named query's statements (several where PostgreSQL's is one with CTEs)."""
    out: list[str] = []
    buf: list[str] = []
    for line in (_Q[name] + ";").splitlines():
        buf.append(line)
        if line.rstrip().endswith(";") and sqlite3.complete_statement("\n".join(buf)):
            out.append("\n".join(buf).strip().rstrip(";"))
            buf = []
    return tuple(out)


def bind(params: Params) -> Params:
    """Parameters as SQLite takes them: a list becomes a JSON array (read with
    ``json_each``)."""
    for value in params.values():
        if type(value) is list:
            return {k: orjson.dumps(v).decode() if type(v) is list else v
                    for k, v in params.items()}
    return params


class _Done:
    """A result read at once (SQLite has nothing to wait for)."""

    __slots__ = ("_count", "_rows")

    def __init__(self, rows: list[Row], count: int) -> None:
        self._rows = rows
        self._count = count

    async def first(self) -> Row | None:
        return self._rows[0] if self._rows else None

    async def rows(self) -> list[Row]:
        return self._rows

    def rowcount(self) -> int:
        return self._count

    async def check(self) -> None:
        """A fence that passed (a failed one raised at once)."""


_PASSED = _Done([], 1)


class SqliteTx:
    """The writer connection inside its transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def _rows(self, query: str, params: Params) -> tuple[list[Row], int]:
        args = bind(params)
        rows: list[Row] = []
        count = 0
        for sql in _statements(query):
            cur = self.conn.execute(sql, args)
            if cur.description is not None:
                rows = cur.fetchall()  # to its end: the statement completes (changes())
            count = cur.rowcount
        return rows, count

    async def one(self, query: str, params: Params) -> Row | None:
        rows = self._rows(query, params)[0]
        return rows[0] if rows else None

    async def all(self, query: str, params: Params) -> list[Row]:
        return self._rows(query, params)[0]

    async def run(self, query: str, params: Params) -> None:
        self._rows(query, params)

    async def later(self, query: str, params: Params) -> _Done:
        rows, count = self._rows(query, params)
        return _Done(rows, count)

    async def insert_events(self, run_id: str, first_seq: int,
                            events: Sequence[NewEvent]) -> None:
        self.conn.executemany(_INSERT_EVENT, [
            (run_id, first_seq + i, e.kind, e.op, e.name, e.ts, e.data, e.meta)
            for i, e in enumerate(events)])

    async def append(self, run_id: str, epoch: int, first_seq: int, events: Sequence[NewEvent],
                     *, now: float, status: str | None = None, result: bytes | None = None,
                     error: bytes | None = None, wake_at: float | None = None,
                     release: bool = False, consume_upto: int | None = None,
                     terminal: bool = False, reserve: int = 0) -> _Done:
        """The fenced append, checked at once: a stale fence raises :class:`Fenced`
        before anything else runs (the events' inserts would collide with those of the
        run's new owner)."""
        fenced_append(self.conn, run_id, epoch, first_seq, events, now=now, status=status,
                      result=result, error=error, wake_at=wake_at, release=release,
                      consume_upto=consume_upto, terminal=terminal, reserve=reserve)
        return _PASSED


def fenced_append(conn: sqlite3.Connection, run_id: str, epoch: int, first_seq: int,
                  events: Sequence[NewEvent], *, now: float, status: str | None = None,
                  result: bytes | None = None, error: bytes | None = None,
                  wake_at: float | None = None, release: bool = False,
                  consume_upto: int | None = None, terminal: bool = False,
                  reserve: int = 0) -> None:
    """:meth:`SqliteTx.append`, as a plain function: also the whole of a plain append
    (a step's outcome), which the store runs without an operation around it (the hot
    path: ``SqliteStore._append_plain``)."""
    new_len = first_seq + len(events) + reserve
    if status is None:
        cur = conn.execute(_FENCE_APPEND, (new_len, now, run_id, epoch, first_seq))
    else:
        cur = conn.execute(_FENCE_TRANSITION, (
            new_len, now, status, result, error, wake_at, release,
            now if terminal else None, run_id, epoch, first_seq))
    if cur.rowcount != 1:
        raise Fenced(run_id)
    if len(events) == 1:
        e = events[0]
        conn.execute(_INSERT_EVENT, (run_id, first_seq, e.kind, e.op, e.name, e.ts, e.data,
                                     e.meta))
    elif events:
        conn.executemany(_INSERT_EVENT, [
            (run_id, first_seq + i, e.kind, e.op, e.name, e.ts, e.data, e.meta)
            for i, e in enumerate(events)])
    if consume_upto is not None:
        conn.execute(_CONSUME, {"run_id": run_id, "upto": consume_upto})
    if terminal:
        conn.execute(_DROP_HEARTBEATS, {"run_id": run_id})


def insert_run(conn: sqlite3.Connection, args: Params) -> bool:
    """``insert_run`` (bound ``args``) as a plain function: whether it created the run
    (its ``RETURNING`` row). The whole of a plain start (``SqliteStore._insert_plain``)."""
    first, started = _statements("insert_run")
    if not conn.execute(first, args).fetchall():
        return False
    conn.execute(started, args)
    return True


def _drive(step: Awaitable[Any]) -> Any:
    """Run a coroutine that never waits to its end, without an event loop."""
    it = step.__await__()
    try:
        it.send(None)
    except StopIteration as done:
        return done.value
    it.close()
    raise RuntimeError("a SQLite store operation waited on something: it must not")


def sqlite_op(op: Op) -> Callable[[sqlite3.Connection], Any]:
    """The writer's form of a shared operation: run on a connection, result and all."""

    def run(conn: sqlite3.Connection) -> Any:
        return _drive(run_op(op, SqliteTx(conn)))

    return run
