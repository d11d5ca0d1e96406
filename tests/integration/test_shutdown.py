"""Graceful shutdown: a draining worker finishes running steps, starts no new ones, and
hands its runs to another worker without losing or repeating work."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import duro
from tests.conftest import run

DONE: list[str] = []


@duro.step(name="shut.slow")
async def slow(tag: str) -> str:
    await asyncio.sleep(0.3)
    DONE.append(tag)
    return tag


@duro.workflow(name="shut.pipeline")
async def pipeline() -> list[str]:
    return [await slow("first"), await slow("second")]


def test_drain_finishes_the_running_step_and_hands_the_run_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/drain.db"
    DONE.clear()

    async def main() -> None:
        async with duro.Engine(url, poll_interval=0.02) as leaving:
            handle = await leaving.start(pipeline, id="drained")
            await asyncio.sleep(0.1)  # "first" is running
            assert leaving.worker is not None
            assert await leaving.worker.drain(grace=5) is True
            assert DONE == ["first"], "the running attempt finished; no new one started"
            assert await handle.status() in (duro.RunStatus.SUSPENDED,
                                             duro.RunStatus.PENDING)
        async with duro.Engine(url, poll_interval=0.02) as other:
            assert await other.get_handle("drained").result(timeout=10) == [
                "first", "second"]
        assert DONE == ["first", "second"], "nothing ran twice"

    run(main())


@duro.workflow(name="shut.quick")
async def quick(i: int) -> int:
    return i


def test_retention_purges_old_finished_runs_on_sqlite(tmp_path: Path) -> None:
    from duro.worker._retention import RetentionPolicy

    clock = duro.ManualClock()
    url = f"sqlite:///{tmp_path}/retention.db"

    async def main() -> None:
        async with duro.Engine(url, clock=clock) as engine:
            old = [await engine.start(quick, i) for i in range(5)]
            for h in old:
                await h.result(timeout=10)
        clock.advance(3 * 86400)
        policy = RetentionPolicy(keep=86400, interval=0.05, batch=2, pause=0)
        async with duro.Engine(url, clock=clock, retention=policy) as engine:
            fresh = await engine.start(quick, 99)
            assert await fresh.result(timeout=10) == 99
            for _ in range(200):
                if len(await engine.list()) == 1:
                    break
                await asyncio.sleep(0.02)
            runs = await engine.list()
            assert [r.run_id for r in runs] == [fresh.run_id]
            assert (await fresh.history())[-1].kind == "run_completed"

    run(main())
    with sqlite3.connect(tmp_path / "retention.db") as conn:
        orphans = conn.execute("SELECT COUNT(*) FROM events WHERE run_id NOT IN "
                               "(SELECT run_id FROM runs)").fetchone()[0]
    assert orphans == 0


def test_a_run_owned_in_the_store_but_not_held_is_handed_back(tmp_path: Path) -> None:
    """As after a write and the release that should follow it both failed: the worker's
    live lease would otherwise keep every other worker away from the run forever."""
    path = tmp_path / "stray.db"
    url = f"sqlite:///{path}"

    async def main() -> None:
        async with duro.Engine(url, lease=0.4, poll_interval=0.05) as engine:
            assert engine.worker is not None
            async with duro.Engine(url, worker=False) as client:
                handle = await client.start(quick, 7, id="stray", start_delay=3600)
            with sqlite3.connect(path) as conn:  # ours in the store, unknown to the worker
                conn.execute("UPDATE runs SET status = 'running', owner = ?, "
                             "epoch = epoch + 1, wake_at = NULL WHERE workflow_id = 'stray'",
                             (engine.worker.worker_id,))
            assert await engine.get_handle("stray").result(timeout=10) == 7
            assert handle.run_id == (await engine.get_handle("stray").describe()).run_id

    run(main())
