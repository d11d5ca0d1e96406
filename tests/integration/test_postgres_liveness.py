"""Liveness through the database session (PostgreSQL): a worker whose session ends is
presumed dead at once, whatever its lease; a server restart presumes nobody dead; a live
worker whose session dropped reconnects and carries on, its lost runs fenced.

Every lease here is 30 s or more, so only the session can explain a takeover within the
test's bounds. The restart test uses a cluster of its own (it restarts it).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import Any

import psycopg
import pytest

import duro
from duro.store import Store, open_store
from duro.store.postgres import PostgresStore
from tests.conftest import run, wait_until
from tests.pg import Cluster

pytestmark = pytest.mark.postgres

LEASE = 30.0


def _schema(url: str) -> str:
    return url.split("schema=")[1].split("&")[0]


async def _sql(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(
            url.split("?")[0], autocommit=True,
            options=f"-c search_path={_schema(url)}") as conn:
        cur = await conn.execute(sql.encode(), params or None)
        return list(await cur.fetchall()) if cur.description else []


async def _pg_store(url: str) -> PostgresStore:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    await store.open()
    return store


def _session_pid(store: PostgresStore) -> int:
    """The backend of the store's liveness session (test-only peek)."""
    liveness = store._liveness
    assert liveness is not None and liveness._conn is not None
    return int(liveness._conn.info.backend_pid)


async def _end_session(url: str, store: PostgresStore) -> None:
    """End the store's liveness session from the server side, as the death of its process
    would (the kernel closes the socket, the backend exits), and wait until it is gone."""
    pid = _session_pid(store)
    await _sql(url, "SELECT pg_terminate_backend(%s)", pid)

    async def gone() -> bool:
        return not await _sql(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid)

    await wait_until(gone, timeout=10)


async def _leases(url: str) -> dict[str, float]:
    return {w: float(t) for w, t in await _sql(url, "SELECT worker_id, lease_until "
                                                   "FROM workers")}


async def _register(store: Store, worker_id: str, host: str) -> None:
    await store.register_worker(worker_id, host, 1, real_now=time.time(), lease=LEASE)


def test_a_worker_whose_session_ended_is_presumed_dead_at_once(pg_url: str) -> None:
    async def main() -> None:
        a, b = await _pg_store(pg_url), await _pg_store(pg_url)
        try:
            await _register(a, "wa", "host-a")
            await _register(b, "wb", "host-b")
            # A worker without a liveness lock (an older duro): only its lease tells.
            await _sql(pg_url, "INSERT INTO workers VALUES ('old', 'host-c', 1, %s, %s)",
                       time.time(), time.time() + LEASE)
            run_a, _ = await a.create_run(
                run_id="ra", workflow_id="ra", workflow_name="wf", input=b'{"args":[]}',
                now=1.0, owner="wa", on_conflict="fail", on_reuse="fail")

            assert await b.expire_disconnected_workers() == 0  # first look: all alive
            assert await b.expire_disconnected_workers() == 0
            assert await b.claim("wb", ["wf"], 10, now=2.0, real_now=time.time()) == []

            await _end_session(pg_url, a)
            assert await b.expire_disconnected_workers() == 1
            leases = await _leases(pg_url)
            assert leases["wa"] == 0 and leases["wb"] > time.time()
            assert leases["old"] > time.time()
            assert await b.expire_disconnected_workers() == 0  # once is enough
            claims = await b.claim("wb", ["wf"], 10, now=2.0, real_now=time.time())
            assert [(c.run_id, c.epoch) for c in claims] == [(run_a.run_id, 2)]

            # The claim deleted a's row (dead, owning nothing). But a is alive after all:
            # its next probe sees its own lock gone, reconnects and takes it again, and
            # judges nobody meanwhile; its lease loop registers it again.
            assert "wa" not in await _leases(pg_url)
            lost = _session_pid(a)
            assert await a.expire_disconnected_workers() == 0
            assert _session_pid(a) != lost
            assert not await a.renew_worker("wa", real_now=time.time(), lease=LEASE)
            await _register(a, "wa", "host-a")
            # b sees a's new lock held, so a second death is noticed too.
            assert await b.expire_disconnected_workers() == 0
            await _end_session(pg_url, a)
            assert await b.expire_disconnected_workers() == 1
            assert (await _leases(pg_url))["wa"] == 0

            # A worker that leaves cleanly deletes its row before letting go of its lock.
            await b.deregister_worker("wb", now=3.0)
            assert "wb" not in await _leases(pg_url)
            assert b._liveness is not None and b._liveness._conn is None
        finally:
            await a.close()
            await b.close()

    run(main())


def test_a_failing_probe_never_stops_the_worker(pg_url: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Liveness only speeds failover up: a probe that fails (a server without
    hashtextextended, say) finds nobody, says so once, and the lease decides alone."""
    async def main() -> None:
        store = await _pg_store(pg_url)
        try:
            await _register(store, "w", "host")
            read = store._read

            async def failing(name: str, params: dict[str, Any], **kw: Any) -> list[Any]:
                if name == "worker_sessions":
                    raise duro.StoreError("database error: no such function")
                return await read(name, params, **kw)

            store._read = failing  # type: ignore[method-assign]
            with caplog.at_level(logging.WARNING, logger="duro"):
                for _ in range(3):
                    assert await store.expire_disconnected_workers() == 0
            assert caplog.text.count("cannot probe other workers' sessions") == 1
            del store._read
            assert await store.expire_disconnected_workers() == 0
        finally:
            await store.close()

    run(main())


def test_a_server_restart_presumes_nobody_dead(restartable: Cluster) -> None:
    url = restartable.fresh_url()

    async def main() -> None:
        a, b = await _pg_store(url), await _pg_store(url)
        try:
            await _register(a, "wa", "host-a")
            await _register(b, "wb", "host-b")
            for store in (a, b):
                assert await store.expire_disconnected_workers() == 0
            await asyncio.to_thread(restartable.pg_ctl, "restart", "-m", "fast")
            # Every session ended at once, ours too: each store notices its own lock is
            # gone, takes it again and judges nobody; then they see each other again.
            for _ in range(4):
                for store in (a, b):
                    assert await store.expire_disconnected_workers() == 0
            assert all(t > time.time() for t in (await _leases(url)).values())
            await _end_session(url, a)
            assert await b.expire_disconnected_workers() == 1
        finally:
            await a.close()
            await b.close()

    run(main(), timeout=120)


EXECUTIONS: collections.Counter[tuple[str, int]] = collections.Counter()
_LOCK = threading.Lock()


@duro.step
async def live_step(key: str, i: int) -> int:
    with _LOCK:
        EXECUTIONS[(key, i)] += 1
    await asyncio.sleep(0.2)
    return i


@duro.workflow(name="liveness_wf")
async def liveness_wf(key: str, steps: int) -> int:
    total = 0
    for i in range(steps):
        total += await live_step(key, i)
    return total


def test_a_live_worker_whose_session_dropped_carries_on(
        pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Worker a's liveness session drops while it runs workflows: worker b takes a's runs
    over at once (not after the 30 s lease), a's late writes are fenced out, a reconnects
    and keeps working, and every run completes with each step recorded once."""
    n, steps = 30, 6
    EXECUTIONS.clear()

    async def main() -> float:
        async with duro.Engine(pg_url, workflows=[liveness_wf], lease=LEASE) as ea, \
                duro.Engine(pg_url, workflows=[liveness_wf], lease=LEASE) as eb:
            assert ea.worker is not None and eb.worker is not None
            worker_a = ea.worker
            handles = await asyncio.gather(*(
                ea.start(liveness_wf, f"k{i}", steps, id=f"live-{i}") for i in range(n)))

            async def a_holds_runs() -> bool:
                rows = await _sql(pg_url, "SELECT count(*) FROM runs WHERE owner = %s "
                                          "AND status = 'running'", worker_a.worker_id)
                return int(rows[0][0]) >= 5

            await wait_until(a_holds_runs, timeout=20)
            store_a = worker_a.store
            assert isinstance(store_a, PostgresStore)
            lost = _session_pid(store_a)

            # Whoever probes first decides: if a notices its loss first it reconnects and
            # keeps its runs (fine, but not the case under test). So a looks only once b
            # has presumed it dead.
            async def not_yet() -> int:
                return 0

            store_a.expire_disconnected_workers = not_yet  # type: ignore[method-assign]
            dropped_at = time.monotonic()
            await _end_session(pg_url, store_a)

            async def a_presumed_dead() -> bool:
                return (await _leases(pg_url)).get(worker_a.worker_id, 0.0) == 0.0

            await wait_until(a_presumed_dead, timeout=5)
            del store_a.expire_disconnected_workers
            results = await asyncio.gather(*(h.result(timeout=60) for h in handles))
            took = time.monotonic() - dropped_at
            assert results == [sum(range(steps))] * n
            # a reconnected: it holds its lock again, on a new session.
            await wait_until(lambda: store_a._liveness is not None
                             and store_a._liveness._conn is not None
                             and _session_pid(store_a) != lost, timeout=10)
            return took

    with caplog.at_level(logging.INFO, logger="duro"):
        took = run(main(), timeout=120)
    assert took < LEASE / 2  # the lease never expired: the session told
    assert "database session was lost" in caplog.text
    assert "lost their database session" in caplog.text
    assert "moved on in the store" in caplog.text  # a's late writes, fenced out
    rows = run(_sql(pg_url, """
        SELECT (SELECT count(*) FROM runs WHERE status = 'completed'),
               (SELECT count(*) FROM (SELECT run_id, op FROM events
                                      WHERE kind = 'step_completed'
                                      GROUP BY run_id, op HAVING count(*) > 1) d),
               (SELECT count(*) FROM events WHERE kind = 'step_completed')"""))
    assert rows == [(n, 0, n * steps)]
    assert set(EXECUTIONS) == {(f"k{i}", s) for i in range(n) for s in range(steps)}
