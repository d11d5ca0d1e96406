"""The read pool: pooled connections that a cancelled task cannot lose.

``psycopg_pool`` loses a connection for good (the pool counts it in use and never
replaces it) when the task that asked for it is cancelled at the wrong moment:

- while it waits for one, as the pool hands it one: on Python 3.11, the pool's
  ``asyncio.wait_for`` drops the hand-over and raises the cancellation (seen on
  ``duro serve``: a stream whose client left as it waited for a connection);
- while it gives one back, if the pool's lock or a waiting client's is taken then.

A plain cancellation seldom comes at those moments. A cancel scope cancels again at
every await until its block is left, so it does: Starlette cancels a stream whose client
went away so. With ``pool_size`` such losses every read waited 10 s for a connection and
failed, until the server was restarted. Here the pool is asked for a connection, and
given it back, in tasks of their own, which no caller's cancellation reaches; a
connection that comes for a caller that left goes back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
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
        self._returning: set[asyncio.Task[None]] = set()

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
        returning = asyncio.get_running_loop().create_task(self.pool.putconn(conn))
        self._returning.add(returning)
        returning.add_done_callback(self._returned)
        return returning

    def _returned(self, returning: asyncio.Task[None]) -> None:
        self._returning.discard(returning)
        if not returning.cancelled() and (error := returning.exception()) is not None:
            log.warning("a connection could not be given back to the read pool: %s", error)

    async def check(self) -> None:
        """Replace the pooled connections that are broken (after a lost server)."""
        await self.pool.check()

    async def close(self) -> None:
        """Close the pool, once the connections on their way back are in it."""
        while self._returning:
            await asyncio.gather(*self._returning, return_exceptions=True)
        await self.pool.close()
