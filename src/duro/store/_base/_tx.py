"""What a dialect gives the shared store: a transaction of named queries (:class:`Tx`).

Every write of the shared store is an *operation*: ``async def op(tx) -> result`` that
reads and writes through ``tx`` only, by the names of the queries in the dialect's
``.sql`` files, with named parameters. A dialect runs it in its own way:

* SQLite runs it on the writer's connection, under a savepoint of the group-commit
  transaction. Its ``Tx`` never waits on anything, so the coroutine runs to its end in
  one step (``sqlite/_tx.py``: no event loop is involved, and it can run on the writer's
  thread).
* PostgreSQL queues its statements in the writer's pipeline: a batch of operations costs
  one round trip. Reading a result inside the operation (:meth:`Tx.one`) costs one more;
  a result needed only by the caller is read after the commit: the operation returns
  :class:`Then`, whose ``finish`` reads :class:`Later` results.

An operation keeps one rule for PostgreSQL's sake (which has no savepoint per
operation): **it raises only when it wrote nothing** — before its first write, or in
``finish`` when its writes matched no row (a stale fencing epoch).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

from duro.store._records import NewEvent
from duro.store._rows import Row

__all__ = ["Ambiguous", "Fence", "Later", "Op", "Params", "Then", "Tx"]

T = TypeVar("T")
Params = Mapping[str, Any]


class Later(Protocol):
    """A statement's result, to read once the transaction committed (inside the
    operation it costs PostgreSQL a round trip)."""

    async def first(self) -> Row | None:
        """Its first row (None: no row)."""
        ...

    async def rows(self) -> list[Row]:
        """All its rows."""
        ...

    def rowcount(self) -> int:
        """Rows it wrote (read it after the commit only)."""
        ...


class Fence(Protocol):
    """The outcome of a fenced append (:meth:`Tx.append`)."""

    async def check(self) -> None:
        """Raise :class:`~duro.store.Fenced` if the append wrote nothing (its epoch was
        stale, or its events do not continue the stored history)."""
        ...


class Tx(Protocol):
    """One operation's view of a write transaction: named queries, named parameters.

    A list parameter is an array (``= ANY(...)`` on PostgreSQL, ``json_each`` on SQLite).
    Rows are indexed by column name.
    """

    async def one(self, query: str, params: Params) -> Row | None:
        """Run a query and read its first row now."""
        ...

    async def all(self, query: str, params: Params) -> list[Row]:
        """Run a query and read its rows now."""
        ...

    async def run(self, query: str, params: Params) -> None:
        """Run a statement whose result nobody reads."""
        ...

    async def later(self, query: str, params: Params) -> Later:
        """Run a query whose result is read later (see :class:`Later`)."""
        ...

    async def insert_events(self, run_id: str, first_seq: int,
                            events: Sequence[NewEvent]) -> None:
        """Insert events numbered from ``first_seq``, unfenced (a new run's history)."""
        ...

    async def append(self, run_id: str, epoch: int, first_seq: int, events: Sequence[NewEvent],
                     *, now: float, status: str | None = None, result: bytes | None = None,
                     error: bytes | None = None, wake_at: float | None = None,
                     release: bool = False, consume_upto: int | None = None,
                     terminal: bool = False, reserve: int = 0) -> Fence:
        """The fenced append: only if the run is running at ``epoch`` with exactly
        ``first_seq`` events, insert ``events`` and set its length (counting ``reserve``
        more events, which the caller inserts next), ``updated_at`` and
        (with ``status``) its status, result, error, ``wake_at``, owner (``release``) and
        ``closed_at`` (``terminal``); consume its inbox up to ``consume_upto``; and for a
        ``terminal`` status drop its heartbeats. All of it or nothing: a failed fence
        writes nothing (the dialect may raise :class:`~duro.store.Fenced` at once)."""
        ...


class Then(Generic[T]):
    """An operation's result, made by ``finish`` once the transaction committed (it reads
    :class:`Later` results, and may raise :class:`~duro.store.Fenced`)."""

    __slots__ = ("finish",)

    def __init__(self, finish: Callable[[], Awaitable[T]]) -> None:
        self.finish = finish


Op = Callable[[Tx], Awaitable[Any]]
"""A write operation: its result, or a :class:`Then`."""

Ambiguous = Literal["retry", "fail"] | Callable[[Tx], Awaitable[None]]
"""What PostgreSQL's writer does when an operation's commit happened but its answer was
lost with the connection (``postgres/_writer.py``): run it again (it is idempotent),
fail, or run this compensation (then fail). SQLite never loses an answer."""
