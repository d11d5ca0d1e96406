"""A queue's rate limit is measured with one clock, at the claim (issue 13, item 11).

``test_rate_limit_holds_over_a_burst[postgres]`` once saw 20 recorded starts within one
second under a limit of 10 per second. Each claim stamped a first start twice, with
times the worker took *before* the claim: ``started_at`` with the durable time read at
the top of its loop turn, the rate log with the real time read a few awaits later (the
difference grows with load), and neither is the time the claim happened (after waiting
for the write lock or the queue's row lock, on another host's clock). The store now takes
one stamp inside the serialized claim — the database's clock on PostgreSQL — and uses it
for both.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from duro.store import Store, open_store
from duro.store._records import Placement, QueueConfig
from tests.conftest import run
from tests.integration.test_queues import _started_times


@contextlib.asynccontextmanager
async def _queue(url: str, name: str, limit: int, runs: int) -> AsyncIterator[Store]:
    """An open store with a queue of ``limit`` starts a second and ``runs`` runs due."""
    store = open_store(url)
    await store.open()
    try:
        now = time.time()
        await store.upsert_queue(QueueConfig(name=name, rate_limit=limit, rate_period=1.0),
                                 now=now)
        for i in range(runs):
            await store.create_run(
                run_id=f"{name}-{i}", workflow_id=f"{name}-{i}", workflow_name="q.job",
                input=b"{}", now=now - 10, owner=None, on_conflict="fail", on_reuse="fail",
                placement=Placement(queue=name))
        yield store
    finally:
        await store.close()


def test_a_late_or_skewed_claimer_clock_cannot_double_the_rate(any_db_url: str) -> None:
    """Two claims a moment apart, the second passing times 1.5 s ahead (a worker whose
    loop turn was slow to reach the claim, or another host's clock): the second must not
    find a fresh window, and the recorded starts must fit the limit."""

    async def main() -> tuple[int, int]:
        async with _queue(any_db_url, "r10", 10, 30) as store:
            now = time.time()
            first = await store.claim("w1", ["q.job"], 50, now=now, real_now=now)
            second = await store.claim("w2", ["q.job"], 50, now=now + 1.5,
                                       real_now=now + 1.5)
            return len(first), len(second)

    first, second = run(main())
    assert first == 10
    assert second == 0, f"{second} more first starts within the same real second"
    times = _started_times(any_db_url)
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert busiest == 10, busiest


def test_starts_are_stamped_when_claimed_not_when_the_loop_turn_began(
        any_db_url: str) -> None:
    """A claim whose durable ``now`` is stale (read at the top of a slow loop turn) still
    records its starts at the claim, on the clock the rate window uses."""

    async def main() -> float:
        async with _queue(any_db_url, "r3", 3, 3) as store:
            before = time.time()
            claims = await store.claim("w1", ["q.job"], 10, now=before - 0.7,
                                       real_now=before)
            assert len(claims) == 3
            return before

    before = run(main())
    after = time.time()
    for stamp in _started_times(any_db_url):
        assert before - 0.05 <= stamp <= after, (before, stamp, after)
