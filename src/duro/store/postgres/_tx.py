"""The shared store's transaction (:class:`~duro.store._base.Tx`) on the PostgreSQL
writer's connection, in pipeline mode: statements are queued, and a result is read
(a round trip) only when an operation asks for it (see ``_writer.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from duro.store._base import Ambiguous, Op, Params, Then
from duro.store._protocol import Fenced
from duro.store._records import NewEvent
from duro.store._rows import Row
from duro.store.postgres._arrays import event_columns
from duro.store.postgres._sql import queries
from duro.store.postgres._writer import Ambiguous as WriterAmbiguous
from duro.store.postgres._writer import Finish
from duro.store.postgres._writer import Op as WriterOp

__all__ = ["PgTx", "pg_ambiguous", "pg_op"]

_Q = queries()
Conn = psycopg.AsyncConnection[Any]


class _Later:
    """A queued statement's result (read after the commit: no round trip of its own)."""

    __slots__ = ("_cur",)

    def __init__(self, cur: psycopg.AsyncCursor[Any]) -> None:
        self._cur = cur

    async def first(self) -> Row | None:
        row: Row | None = await self._cur.fetchone()
        return row

    async def rows(self) -> list[Row]:
        rows: list[Row] = await self._cur.fetchall()
        return rows

    def rowcount(self) -> int:
        return self._cur.rowcount


class _Fence:
    """A queued fenced append: its statement returns how many rows the fence matched."""

    __slots__ = ("_cur", "_run_id")

    def __init__(self, cur: psycopg.AsyncCursor[Any], run_id: str) -> None:
        self._cur = cur
        self._run_id = run_id

    async def check(self) -> None:
        row = await self._cur.fetchone()
        if row is None or row[0] != 1:
            raise Fenced(self._run_id)


class PgTx:
    """The writer's connection inside its batch's (implicit) transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def _cursor(self, query: str, params: Params) -> psycopg.AsyncCursor[Any]:
        cur = self.conn.cursor(row_factory=dict_row)
        await cur.execute(_Q[query], params)
        return cur

    async def one(self, query: str, params: Params) -> Row | None:
        row: Row | None = await (await self._cursor(query, params)).fetchone()
        return row

    async def all(self, query: str, params: Params) -> list[Row]:
        rows: list[Row] = await (await self._cursor(query, params)).fetchall()
        return rows

    async def run(self, query: str, params: Params) -> None:
        await self.conn.execute(_Q[query], params)

    async def later(self, query: str, params: Params) -> _Later:
        return _Later(await self._cursor(query, params))

    async def insert_events(self, run_id: str, first_seq: int,
                            events: Sequence[NewEvent]) -> None:
        await self.conn.execute(_Q["insert_events"],
                                {"run_id": run_id, **event_columns(first_seq, events)})

    async def append(self, run_id: str, epoch: int, first_seq: int, events: Sequence[NewEvent],
                     *, now: float, status: str | None = None, result: bytes | None = None,
                     error: bytes | None = None, wake_at: float | None = None,
                     release: bool = False, consume_upto: int | None = None,
                     terminal: bool = False, reserve: int = 0) -> _Fence:
        """The fenced append as one statement (a failed fence writes nothing)."""
        simple = status is None and consume_upto is None
        params: dict[str, Any] = {"run_id": run_id, "epoch": epoch, "now": now,
                                  "new_len": first_seq + len(events) + reserve,
                                  "first_seq": first_seq}
        if simple and len(events) == 1:
            # The hottest path (one step_completed): scalars, which psycopg adapts
            # several times faster than arrays.
            e = events[0]
            sql = _Q["append_one"]
            params.update(seq=first_seq, kind=e.kind, op=e.op, name=e.name, ts=e.ts,
                          data=e.data, meta=e.meta)
        else:
            sql = _Q["append"] if simple else _Q["append_transition"]
            params.update(event_columns(first_seq, events))
        if not simple:
            params.update(status=status, result=result, error=error, wake_at=wake_at,
                          release=release, terminal=terminal, consume=consume_upto)
        cur = self.conn.cursor()
        await cur.execute(sql, params)
        return _Fence(cur, run_id)


def _done(value: Any) -> Finish:
    async def finish() -> Any:
        return value

    return finish


def pg_op(op: Op) -> WriterOp:
    """The writer's form of a shared operation: its statements queued on the
    connection, its result read by ``finish`` after the commit."""

    async def run(conn: Conn) -> Finish:
        result = await op(PgTx(conn))
        if isinstance(result, Then):
            return result.finish
        return _done(result)

    return run


def pg_ambiguous(ambiguous: Ambiguous) -> WriterAmbiguous:
    """The writer's form of an operation's ``ambiguous`` policy."""
    if not callable(ambiguous):
        return ambiguous

    async def compensate(conn: Conn) -> None:
        await ambiguous(PgTx(conn))

    return compensate
