"""The store's count of deaths a run went through (``Claim.recoveries``): every take-over
from a dead worker counts, until the run writes something; from the second one in a row
on, only a death while the run was on trial (taken up alone) counts."""

from __future__ import annotations

import time

from duro.store import NewEvent, Store, open_store
from tests.conftest import run


async def _dead_owner(store: Store, worker: str) -> None:
    """Register ``worker`` with a lease that has already run out."""
    await store.register_worker(worker, "h", 1, real_now=time.time() - 100, lease=1)


async def _take_over(store: Store, worker: str) -> tuple[int, int]:
    await store.register_worker(worker, "h", 2, real_now=time.time(), lease=60)
    claims = await store.claim(worker, ["wf"], 10, now=100.0, real_now=time.time())
    assert len(claims) == 1, claims
    return claims[0].epoch, claims[0].recoveries


def test_recoveries_count_deaths_without_progress_and_trials(any_db_url: str) -> None:
    async def main() -> None:
        store = open_store(any_db_url)
        await store.open()
        try:
            await _dead_owner(store, "w0")
            record, _ = await store.create_run(
                run_id="r1", workflow_id="r", workflow_name="wf", input=b'{"args":[]}',
                now=100.0, owner="w0", on_conflict="fail", on_reuse="allow")
            # Two deaths: both count, whatever the run was doing.
            await _dead_owner(store, "w0")
            epoch, count = await _take_over(store, "w1")
            assert count == 1
            await _dead_owner(store, "w1")
            epoch, count = await _take_over(store, "w2")
            assert count == 2
            # A suspect now: a death while it was not on trial does not count...
            await _dead_owner(store, "w2")
            epoch, count = await _take_over(store, "w3")
            assert count == 2
            # ...one while it was on trial does.
            await store.mark_trial(record.run_id, epoch)
            await _dead_owner(store, "w3")
            epoch, count = await _take_over(store, "w4")
            assert count == 3
            # Progress: anything written starts the count again.
            await store.append(record.run_id, epoch, 1, [NewEvent(
                kind="step_completed", ts=101.0, op=1, name="s", data=b"1")], now=101.0)
            await _dead_owner(store, "w4")
            epoch, count = await _take_over(store, "w5")
            assert count == 1
        finally:
            await store.close()

    run(main())
