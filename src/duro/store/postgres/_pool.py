"""The read pool: pooled connections that a cancelled task cannot lose.

``psycopg_pool`` loses a connection for good (the pool counts it in use and never
replaces it) when the task that uses it is cancelled at the wrong moment:

- as it gives one back, if the pool's lock or a waiting client's is taken then (seen on
  ``duro serve``: ``putconn`` cancelled, traced; ``check()`` puts connections back the
  same way);
- as the pool hands it one while it waits (psycopg_pool before 3.3.1, which duro's
  ``psycopg-pool>=3.2`` allows; later versions give such a connection back themselves).

A plain cancellation seldom comes at those moments. A cancel scope cancels again at
every await until its block is left, so it does: Starlette cancels a stream whose client
went away so. With ``pool_size`` such losses every read waited 10 s for a connection and
failed, until the server was restarted. Here the pool is asked for a connection, given
it back and checked in tasks of their own, which no caller's cancellation reaches; a
connection that comes for a caller that left goes back at once (a caller that leaves
while it waits leaves its request waiting, up to the pool's timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

__all__ = ["ReadPool"]

log = logging.getLogger("duro.store.postgres")
Conn = psycopg.AsyncConnection[Any]


class ReadPool:
    """An open ``AsyncConnectionPool``, and the connections on their way back to it."""

    def __init__(self, pool: AsyncConnectionPool[Conn]) -> None:
        self.pool = pool
        self._owned: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A connection of the pool for the block (``PoolTimeout`` when none comes in
        the pool's timeout), given back however the block ends, even if the task is
        cancelled as it waits for it or leaves the block. The pool rolls back a
        transaction left open, and replaces a connection left busy or broken."""
        getting = asyncio.get_running_loop().create_task(self.pool.getconn())
        try:
            conn = await asyncio.shield(getting)
        except BaseException:
            # Cancelled (or the pool failed): what it still gets goes back.
            getting.add_done_callback(self._unwanted)
            raise
        try:
            yield conn
        finally:
            # Shielded: a cancelled task leaves at once; its connection goes back.
            await asyncio.shield(self._give_back(conn))

    def _unwanted(self, getting: asyncio.Task[Conn]) -> None:
        if not getting.cancelled() and getting.exception() is None:
            self._give_back(getting.result())

    def _give_back(self, conn: Conn) -> asyncio.Task[None]:
        return self._own(self.pool.putconn(conn))

    def _own(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """``work`` in a task of its own (kept here until it is done)."""
        task = asyncio.get_running_loop().create_task(work)
        self._owned.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._owned.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # Also raised to the caller, if it still waits: logged for one that left.
            log.warning("the read pool failed to give a connection back or to check its "
                        "connections: %s", error)

    async def check(self) -> None:
        """Replace the pooled connections that are broken (after a lost server). The
        pool takes each out and puts it back: shielded, as a connection given back."""
        await asyncio.shield(self._own(self.pool.check()))

    async def close(self) -> None:
        """Close the pool, once the connections on their way back are in it (for the
        pool's timeout at most: a later one finds the pool closed, which closes it)."""
        if self._owned:
            # asyncio.wait, not gather: a cancelled close() must not cancel them.
            await asyncio.wait(set(self._owned), timeout=self.pool.timeout)
        await self.pool.close()
