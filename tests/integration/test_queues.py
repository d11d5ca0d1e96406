"""Queues and flow control, on SQLite and on PostgreSQL: concurrency limits across
workers, rate limits, concurrency keys, priorities, dedup, debounce, delayed starts."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator

import pytest

import duro
from duro.testing import ManualClock
from tests.conftest import run, wait_until

LIMITED = duro.Queue("q-limit3", concurrency=3)
RATED = duro.Queue("q-rate10", rate_limit=10, rate_period=1.0)
KEYED = duro.Queue("q-keyed", key_concurrency=1)
SERIAL = duro.Queue("q-serial", concurrency=1)

STATS: dict[str, object] = {}
RUNNING: dict[str, int] = {}
PEAK: dict[str, int] = {}
STARTS: list[tuple[float, str]] = []
GATE = asyncio.Event


def _enter(group: str) -> None:
    RUNNING[group] = RUNNING.get(group, 0) + 1
    PEAK[group] = max(PEAK.get(group, 0), RUNNING[group])


def _leave(group: str) -> None:
    RUNNING[group] -= 1


@duro.step(name="q.work")
async def work(group: str, tag: str, seconds: float) -> str:
    STARTS.append((time.monotonic(), tag))
    _enter(group)
    _enter(f"{group}:{tag.split('-')[0]}")
    try:
        await asyncio.sleep(seconds)
    finally:
        _leave(group)
        _leave(f"{group}:{tag.split('-')[0]}")
    return tag


@duro.workflow(name="q.job")
async def job(group: str, tag: str, seconds: float) -> str:
    return await work(group, tag, seconds)


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Store-agnostic tests: each runs on SQLite and on PostgreSQL."""
    return any_db_url


def _started_times(url: str) -> list[float]:
    """When the store recorded each run's first start (a direct read of ``runs``)."""
    sql = "SELECT started_at FROM runs WHERE started_at IS NOT NULL ORDER BY started_at"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [r[0] for r in conn.execute(sql)]
    from urllib.parse import parse_qs, urlparse

    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    with psycopg.connect(url.split("?")[0]) as pg:
        return [r[0] for r in pg.execute(sql.replace("FROM runs", f'FROM "{schema}".runs'))]


def _reset() -> None:
    RUNNING.clear()
    PEAK.clear()
    STARTS.clear()


@contextlib.asynccontextmanager
async def engines(url: str, n: int, **options: object) -> AsyncIterator[list[duro.Engine]]:
    async with contextlib.AsyncExitStack() as stack:
        out = [await stack.enter_async_context(duro.Engine(url, poll_interval=0.02,
                                                           **options))  # type: ignore[arg-type]
               for _ in range(n)]
        yield out


def test_global_concurrency_limit_holds_across_several_workers(db_url: str) -> None:
    _reset()
    url = db_url

    async def main() -> None:
        async with engines(url, 3) as (a, b, c):
            handles = []
            for i in range(30):
                engine = (a, b, c)[i % 3]
                # Long enough that under a loaded machine the three workers' jobs
                # still overlap, so the peak shows the limit reached, not only held.
                handles.append(await engine.start(job, "limit", f"r-{i}", 0.15,
                                                  queue="q-limit3"))
            await asyncio.gather(*(h.result(timeout=60) for h in handles))
            stats = {s.config.name: s for s in await a.queues()}
            assert stats["q-limit3"].config.concurrency == 3
            assert stats["q-limit3"].running == 0

    run(main(), timeout=120)
    assert PEAK["limit"] == 3, PEAK


def test_rate_limit_holds_over_a_burst(db_url: str) -> None:
    _reset()
    url = db_url

    async def main() -> int:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            await asyncio.gather(*(engine.start(job, "rate", f"r-{i}", 0.0, queue="q-rate10")
                                   for i in range(200)))
            await wait_until(lambda: len(STARTS) >= 1, timeout=10)
            first = STARTS[0][0]
            await asyncio.sleep(max(0.0, first + 5.0 - time.monotonic()))
            return sum(1 for t, _ in STARTS if t < first + 5.0)

    started = run(main(), timeout=60)
    assert 49 <= started <= 51, started
    # The limit governs starts, as the store records them (a step begins a moment later,
    # by a varying amount, so step times would blur the windows' edges).
    times = _started_times(url)
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert busiest == 10, busiest


def test_concurrency_key_serializes_one_key_while_others_proceed(db_url: str) -> None:
    _reset()
    url = db_url

    async def main() -> None:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            handles = [await engine.start(job, "keyed", f"{key}-{i}", 0.03, queue="q-keyed",
                                          concurrency_key=key)
                       for i in range(5) for key in ("alice", "bob", "carol")]
            await asyncio.gather(*(h.result(timeout=60) for h in handles))

    run(main(), timeout=120)
    for key in ("alice", "bob", "carol"):
        assert PEAK[f"keyed:{key}"] == 1, PEAK
    assert PEAK["keyed"] >= 2, "different keys must run side by side"


@duro.step(name="q.hold")
async def hold(tag: str) -> str:
    STARTS.append((time.monotonic(), tag))
    while not RELEASE["go"]:
        await asyncio.sleep(0.01)
    return tag


RELEASE = {"go": False}


@duro.workflow(name="q.blocker")
async def blocker(tag: str) -> str:
    return await hold(tag)


def test_priorities_under_saturation(db_url: str) -> None:
    _reset()
    RELEASE["go"] = False
    url = db_url

    async def main() -> list[str]:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            first = await engine.start(blocker, "blocker", queue="q-serial")
            await wait_until(lambda: len(STARTS) == 1)
            low = [await engine.start(job, "prio", f"low-{i}", 0.0, queue="q-serial",
                                      priority=0) for i in range(4)]
            high = [await engine.start(job, "prio", f"high-{i}", 0.0, queue="q-serial",
                                       priority=10) for i in range(4)]
            RELEASE["go"] = True
            await asyncio.gather(*(h.result(timeout=30) for h in [first, *low, *high]))
            return [tag for _, tag in STARTS[1:]]

    order = run(main(), timeout=60)
    assert [t.split("-")[0] for t in order] == ["high"] * 4 + ["low"] * 4, order


@duro.workflow(name="q.waiter")
async def waiter() -> str:
    await duro.wait_for_signal("go")
    return "waited"


def test_a_waiting_run_holds_no_slot(db_url: str) -> None:
    _reset()
    url = db_url

    async def main() -> None:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            waiting = await engine.start(waiter, queue="q-serial", id="w")
            await wait_until(lambda: _is(waiting, duro.RunStatus.SUSPENDED))
            other = await engine.start(job, "slot", "x-1", 0.0, queue="q-serial")
            assert await other.result(timeout=10) == "x-1"
            await engine.signal("w", "go")
            assert await waiting.result(timeout=10) == "waited"

    run(main())


def test_dedup_key_returns_or_rejects_the_live_run(db_url: str) -> None:
    RELEASE["go"] = False
    url = db_url

    async def main() -> None:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            a = await engine.start(blocker, "d1", dedup_key="order-42")
            b = await engine.start(blocker, "d2", dedup_key="order-42")
            assert b.run_id == a.run_id and b.workflow_id == a.workflow_id
            with pytest.raises(duro.WorkflowAlreadyStartedError, match="order-42"):
                await engine.start(blocker, "d3", dedup_key="order-42", on_dedup="fail")
            RELEASE["go"] = True
            assert await a.result(timeout=10) == "d1"
            c = await engine.start(blocker, "d4", dedup_key="order-42")
            assert c.run_id != a.run_id, "the key is free again once the run ended"
            assert await c.result(timeout=10) == "d4"

    run(main())


@duro.workflow(name="q.echo")
async def echo(value: int) -> int:
    return value


def test_debounce_runs_only_the_last_of_a_burst(db_url: str) -> None:
    clock = ManualClock()
    url = db_url

    async def main() -> None:
        async with duro.Engine(url, clock=clock, poll_interval=0.02) as engine:
            handles = []
            for i in range(50):
                handles.append(await engine.start(echo, i, debounce_key="reindex",
                                                  debounce=5))
                clock.advance(0.05)  # a burst: each start within the quiet period
            assert len({h.run_id for h in handles}) == 1
            await asyncio.sleep(0.2)
            assert await handles[0].status() == duro.RunStatus.PENDING
            clock.advance(5.1)
            assert await handles[0].result(timeout=10) == 49
            runs = await engine.list(name="q.echo")
            assert len(runs) == 1
            history = await handles[0].history()
            assert history[0].data == {"args": [49], "kwargs": {}}

    run(main())


def test_delayed_start(db_url: str) -> None:
    clock = ManualClock()
    url = db_url

    async def main() -> None:
        async with duro.Engine(url, clock=clock, poll_interval=0.02) as engine:
            later = await engine.start(echo, 7, start_delay=60)
            await asyncio.sleep(0.2)
            assert await later.status() == duro.RunStatus.PENDING
            clock.advance(61)
            assert await later.result(timeout=10) == 7

    run(main())


def test_workers_take_only_the_queues_they_serve(db_url: str) -> None:
    url = db_url

    async def main() -> None:
        async with duro.Engine(url, queues=["gpu"], poll_interval=0.02) as gpu_only:
            elsewhere = await gpu_only.start(echo, 1)  # "default": not served here
            on_gpu = await gpu_only.start(echo, 2, queue="gpu")
            assert await on_gpu.result(timeout=10) == 2
            await asyncio.sleep(0.2)
            assert await elsewhere.status() == duro.RunStatus.PENDING
        async with duro.Engine(url, poll_interval=0.02) as everything:
            assert await everything.get_handle(elsewhere.workflow_id).result(timeout=10) == 1

    run(main())


async def _is(handle: duro.WorkflowHandle[object], status: duro.RunStatus) -> bool:
    return await handle.status() == status


PER_WORKER = duro.Queue("q-per-worker", per_worker=1)


def test_per_worker_limit(db_url: str) -> None:
    _reset()
    url = db_url

    async def main() -> None:
        async with engines(url, 2) as (a, b):
            handles = [await (a, b)[i % 2].start(job, "perw", f"p-{i}", 0.3,
                                                 queue="q-per-worker") for i in range(10)]
            await asyncio.gather(*(h.result(timeout=60) for h in handles))

    run(main(), timeout=120)
    assert PEAK["perw"] == 2, PEAK  # one per worker, and both worked


def test_limits_hold_when_several_stores_claim_at_once(db_url: str) -> None:
    """Claims racing from several store connections (as from several hosts) never
    exceed a queue's concurrency, rate or per-key limits."""
    from duro.store import open_store
    from duro.store._records import Placement, QueueConfig

    async def main() -> None:
        stores = [open_store(db_url) for _ in range(4)]
        for s in stores:
            await s.open()
        try:
            now = time.time()
            await stores[0].upsert_queue(QueueConfig(name="c3", concurrency=3), now=now)
            await stores[0].upsert_queue(QueueConfig(name="r5", rate_limit=5, rate_period=60),
                                         now=now)
            await stores[0].upsert_queue(QueueConfig(name="k1", key_concurrency=1), now=now)
            for i in range(12):
                for queue, key in (("c3", None), ("r5", None), ("k1", f"key-{i % 2}")):
                    await stores[0].create_run(
                        run_id=f"{queue}-{i}", workflow_id=f"{queue}-{i}",
                        workflow_name="q.job", input=b"{}", now=now, owner=None,
                        on_conflict="fail", on_reuse="fail",
                        placement=Placement(queue=queue, concurrency_key=key))
            claims = await asyncio.gather(*(
                s.claim(f"w{i}", ["q.job"], 10, now=now + 1, real_now=time.time())
                for _ in range(3) for i, s in enumerate(stores)))
            by_queue: dict[str, int] = {}
            for batch in claims:
                for c in batch:
                    by_queue[c.queue] = by_queue.get(c.queue, 0) + 1
            assert by_queue == {"c3": 3, "r5": 5, "k1": 2}, by_queue
            stats = {s.config.name: s for s in await stores[0].queue_stats(
                real_now=time.time())}
            assert stats["r5"].started_last_period == 5
            assert stats["c3"].running == 3 and stats["c3"].pending == 9
        finally:
            for s in stores:
                await s.close()

    run(main())
