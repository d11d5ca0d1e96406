"""The hooks a dialect implements for the shared store (:class:`Dialect`), and the
write helpers built on them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from duro.errors import StoreError
from duro.store._base._tx import Ambiguous, Op, Params, Then, Tx
from duro.store._records import NewEvent
from duro.store._rows import Row

__all__ = ["Dialect", "Moved"]

_MOVED_RETRIES = 5
"""Lookups of a workflow id's live run before giving up (see :meth:`Dialect._write_message`)."""


class Moved(Exception):
    """The live run a message was for ended before the message went in (nothing was
    written): look the workflow id up again."""


class Dialect:
    """What the shared store needs of a database: a way to write, a way to read.

    Everything else (every engine rule, every operation) is written once over these, in
    the mixins of :class:`~duro.store._base.SqlStore`.
    """

    url: str

    _wake_params: dict[str, Any] = {}
    """Parameters the ``wake_if_inbox`` query needs besides the run (PostgreSQL: the
    NOTIFY channel and this store's token)."""

    async def _write(self, op: Op, *, notify: bool = False,
                     ambiguous: Ambiguous = "fail") -> Any:
        """Run a write operation in the dialect's writer (group commit) and return its
        result once committed.

        Args:
            op: The operation (see ``_tx.py``).
            notify: It may make work claimable by other processes: wake their workers
                (PostgreSQL's NOTIFY; SQLite's workers poll).
            ambiguous: See :data:`~duro.store._base._tx.Ambiguous`.
        """
        raise NotImplementedError

    async def _append_plain(self, run_id: str, epoch: int, first_seq: int,
                            events: Sequence[NewEvent], now: float) -> None:
        """A fenced append with nothing else to do (no status change, no projection, no
        inbox consumed): the most frequent write. A dialect may run it without the
        operation machinery; this is the generic form."""

        async def op(tx: Tx) -> Then[None]:
            fence = await tx.append(run_id, epoch, first_seq, events, now=now)
            return Then(fence.check)

        await self._write(op)

    async def _insert_plain(self, params: Params) -> bool:
        """Try a start's ``insert_run`` (the run and its ``run_started`` event) in a
        transaction of its own, for a start with nothing else to do (no message, no
        search attribute, no deduplication or debounce key): True if it created the run;
        False if it wrote nothing (the id has runs: the caller's full operation decides),
        and for a dialect without this shortcut (the generic form: always False)."""
        return False

    async def _fetch(self, query: str, params: Params) -> list[Row]:
        """Run a named read query outside the writer and return its rows."""
        raise NotImplementedError

    async def _fetch_all(self, queries: Sequence[str], params: Params) -> list[list[Row]]:
        """The rows of each named read query, all read in one snapshot."""
        raise NotImplementedError

    async def _write_message(self, op: Op, **kw: Any) -> Any:
        """:meth:`_write` an operation that sends a message to a workflow id's live run,
        again while it raises :class:`Moved` (the run it looked up ended, or continued
        as new, before the message went in: on PostgreSQL another transaction, which
        this one's snapshot could not see coming)."""
        for _ in range(_MOVED_RETRIES):
            try:
                return await self._write(op, **kw)
            except Moved:
                continue
        raise StoreError("the run kept ending while a message was sent to it; try again")

    async def _simple(self, query: str, params: Params, *, notify: bool = False,
                      ambiguous: Ambiguous = "retry") -> int:
        """One statement; returns how many rows it wrote."""

        async def op(tx: Tx) -> Then[int]:
            done = await tx.later(query, params)

            async def finish() -> int:
                return done.rowcount()

            return Then(finish)

        count: int = await self._write(op, notify=notify, ambiguous=ambiguous)
        return count

    async def _value(self, query: str, params: Params, column: str) -> Any:
        """One column of a read's first row (None: no row)."""
        rows = await self._fetch(query, params)
        return rows[0][column] if rows else None
