"""The PostgreSQL store's read pool never loses a connection to a cancelled task.

``psycopg_pool`` may suspend as it takes a connection back (its lock, or a waiting
client's, taken by another task), and so does its ``check()``; a task cancelled there
lost the connection for good (and before psycopg_pool 3.3.1, a task cancelled as the pool
handed it one). Starlette cancels a stream whose client left with a cancel scope, which
cancels again at every await, so ``duro serve`` lost one at each unlucky disconnect until
every read waited for a connection that never came. ``SuspendingPool`` suspends at those
points every time and ``CheckingPool`` lets the test hold the pool's lock in ``check()``,
so the tests cancel exactly there (each fails with psycopg_pool's own ``connection()``).
The last test is a smoke run of real store reads cancelled at random moments by cancel
scopes, as the server's streams are (it seldom hits the moments above by itself).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from duro.store import open_store
from duro.store.postgres import PostgresStore
from duro.store.postgres._pool import ReadPool
from tests.conftest import run

pytestmark = pytest.mark.postgres

Conn = psycopg.AsyncConnection[Any]


class SuspendingPool(AsyncConnectionPool[Conn]):
    """A pool that suspends before it takes a connection back (where psycopg_pool may)
    and after it gave one away (where psycopg_pool before 3.3.1 could lose it):
    ``taking`` and ``giving`` are set there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.giving = asyncio.Event()
        self.taking = asyncio.Event()

    async def getconn(self, timeout: float | None = None) -> Conn:
        conn = await super().getconn(timeout)
        self.giving.set()
        await asyncio.sleep(0.05)  # the connection is the asker's from here on
        return conn

    async def putconn(self, conn: Conn) -> None:
        self.taking.set()
        await asyncio.sleep(0.05)  # the pool's lock, taken by another task
        await super().putconn(conn)


async def _pool(conninfo: str) -> ReadPool:
    pool = SuspendingPool(conninfo, min_size=1, max_size=1, timeout=3.0,
                          kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True, timeout=30.0)
    return ReadPool(pool)


def _suspending(pool: ReadPool) -> SuspendingPool:
    assert isinstance(pool.pool, SuspendingPool)
    return pool.pool


async def _usable(pool: ReadPool) -> None:
    """The pool's one connection comes at once (it was not lost) and works."""
    with anyio.fail_after(2):
        async with pool.connection() as conn:
            assert await (await conn.execute("select 1")).fetchone() == (1,)
    assert pool.pool.get_stats()["pool_available"] == 1


async def _cancel_when(moment: asyncio.Event, read: Callable[[], Awaitable[None]], *,
                      scope: bool) -> None:
    """Run ``read`` in a task and cancel it once ``moment`` is set: with ``Task.cancel``
    (once), or with a cancel scope (again at every await, as Starlette cancels)."""
    moment.clear()
    if scope:
        with anyio.CancelScope() as cancelling:
            async with anyio.create_task_group() as group:
                group.start_soon(read)
                await moment.wait()
                cancelling.cancel()
        return
    task = asyncio.create_task(read())
    await moment.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("scope", [False, True], ids=["cancel", "cancel-scope"])
def test_a_task_cancelled_as_it_gives_a_connection_back_loses_none(
        pg_cluster: Any, scope: bool) -> None:
    async def main() -> None:
        pool = await _pool(pg_cluster.url)
        try:
            async def read() -> None:
                async with pool.connection() as conn:
                    await conn.execute("select 1")

            await _cancel_when(_suspending(pool).taking, read, scope=scope)
            await _usable(pool)
        finally:
            await pool.close()

    run(main())


@pytest.mark.parametrize("scope", [False, True], ids=["cancel", "cancel-scope"])
def test_a_task_cancelled_as_a_connection_comes_to_it_loses_none(
        pg_cluster: Any, scope: bool) -> None:
    async def main() -> None:
        pool = await _pool(pg_cluster.url)
        reached = asyncio.Event()
        try:
            async def read() -> None:
                async with pool.connection():
                    reached.set()  # not reached: cancelled before the block

            await _cancel_when(_suspending(pool).giving, read, scope=scope)
            assert not reached.is_set()
            await _usable(pool)
        finally:
            await pool.close()

    run(main())


def test_store_reads_cancelled_by_cancel_scopes_at_random_lose_no_connection(
        pg_url: str) -> None:
    """Streams reading the store, their clients leaving at random moments (one pooled
    connection for all of them, so they wait for it and hand it over), then a read:
    it gets the connection at once."""
    async def main() -> None:
        store = open_store(pg_url + "&pool_size=1")
        assert isinstance(store, PostgresStore)
        await store.open()
        rng = random.Random(7)
        try:
            for _ in range(60):
                async with anyio.create_task_group() as group:
                    for _ in range(3):
                        async def stream() -> None:
                            while True:
                                await store.list_runs(limit=5)
                        group.start_soon(stream)
                    await anyio.sleep(rng.random() * 0.01)
                    group.cancel_scope.cancel()
            with anyio.fail_after(5):
                assert await store.list_runs(limit=5) == []
        finally:
            await store.close()

    run(main())


class CheckingPool(AsyncConnectionPool[Conn]):
    """A pool whose ``check()`` waits, once a connection is checked, until ``locked``
    is set (the test then holds the pool's lock: putting the connection back waits)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked = asyncio.Event()
        self.locked = asyncio.Event()

    async def check_connection(self, conn: Conn) -> None:  # type: ignore[override]
        await AsyncConnectionPool.check_connection(conn)
        self.checked.set()
        await self.locked.wait()


@pytest.mark.parametrize("scope", [False, True], ids=["cancel", "cancel-scope"])
def test_a_task_cancelled_as_it_checks_the_pool_loses_no_connection(
        pg_cluster: Any, scope: bool) -> None:
    """``check()`` (a read's retry after a lost server) takes the idle connections out
    and puts each back under the pool's lock: a caller cancelled while another task
    holds that lock loses none."""
    async def main() -> None:
        inner = CheckingPool(pg_cluster.url, min_size=3, max_size=3, timeout=3.0,
                             kwargs={"autocommit": True}, open=False)
        await inner.open(wait=True, timeout=30.0)
        pool = ReadPool(inner)
        lock = inner._lock  # psycopg_pool's own, which putting one back waits for
        assert isinstance(lock, asyncio.Lock)
        moment = asyncio.Event()
        try:
            task = asyncio.create_task(_cancel_when(moment, pool.check, scope=scope))
            await inner.checked.wait()  # one checked, the others out of the pool too
            async with lock:
                inner.locked.set()  # check() goes on, and waits for the lock
                await asyncio.sleep(0.05)
                moment.set()  # the caller is cancelled there
                await asyncio.sleep(0.05)
            await task
            with anyio.fail_after(3):
                while inner.get_stats()["pool_available"] < 3:
                    await asyncio.sleep(0.01)
        finally:
            await pool.close()

    run(main())
