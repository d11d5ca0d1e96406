"""Sleeping runs cost rows, not memory, and all wake when due (controlled time)."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from pathlib import Path

import duro
from duro.testing import ManualClock
from tests.conftest import run, wait_until

RUNS = 10_000


@duro.step
async def mark(i: int) -> int:
    return i


@duro.workflow
async def nap(i: int) -> int:
    await asyncio.sleep(3600)
    return await mark(i)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _count(path: Path, status: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM runs WHERE status = ?",
                                (status,)).fetchone()[0])


def _counts(path: Path) -> dict[str, int]:
    """Runs by status, in one read (one snapshot of the file)."""
    with sqlite3.connect(path) as conn:
        return {status: int(n) for status, n in conn.execute(
            "SELECT status, COUNT(*) FROM runs GROUP BY status")}


def test_ten_thousand_sleeping_runs_are_rows_and_all_wake(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "timers.db"
    report: dict[str, float] = {}

    async def main() -> None:
        async with duro.Engine(f"sqlite:///{path}", clock=clock, workflows=[nap],
                               max_cached=100) as engine:
            assert engine.worker is not None
            rss_before = _rss_mb()
            started = time.perf_counter()
            for chunk in range(0, RUNS, 1000):
                await asyncio.gather(*(engine.start(nap, i, id=f"nap-{i}")
                                       for i in range(chunk, chunk + 1000)))
            await wait_until(lambda: _count(path, "suspended") == RUNS, timeout=120,
                             interval=0.2)
            report["start_and_suspend_s"] = time.perf_counter() - started
            # The worker hears of the last commit a moment after the file shows it.
            await wait_until(lambda: not engine.worker.active, timeout=10)
            gc.collect()
            report["rss_mb"] = _rss_mb()
            report["rss_growth_mb"] = report["rss_mb"] - rss_before
            # Rows, not coroutines: nothing active, at most the small cache in memory.
            assert not engine.worker.active
            assert len(engine.worker.cache) <= 100
            live = [t for t in asyncio.all_tasks() if not t.done()]
            assert len(live) < 50, f"{len(live)} tasks alive while everything sleeps"

            clock.advance(3599)
            await asyncio.sleep(0.5)
            # Runs due within the worker's look-ahead are claimed and loaded now (so
            # that they wake on time), but nothing may fire or run before it is due.
            assert engine.worker.steps_executed == 0, "a step ran before its timer ended"
            with sqlite3.connect(path) as conn:
                fired = conn.execute("SELECT COUNT(*) FROM events WHERE kind IN "
                                     "('timer_fired', 'step_completed')").fetchone()[0]
            assert fired == 0, "nothing may wake before it is due"
            # One read of both counts: the writer's thread may commit a claim between two.
            counts = _counts(path)
            prefetched = counts.get("running", 0)
            # Claimed runs are held, or (a batch) still being claimed or loaded.
            assert 0 < prefetched <= len(engine.worker.active) + engine.worker.runs.reserved
            assert counts.get("suspended", 0) + prefetched == RUNS, counts

            woke = time.perf_counter()
            clock.advance(2)
            await wait_until(lambda: _count(path, "completed") == RUNS, timeout=180,
                             interval=0.2)
            report["wake_and_complete_s"] = time.perf_counter() - woke
            assert await engine.get_handle("nap-1234").result(timeout=5) == 1234

    run(main(), timeout=400)
    print(f"\n10k sleeping runs: {report}")
    # A generous ceiling that still proves runs are not held in memory (each held run
    # costs tens of KB); the measured figure is printed and reported.
    assert report["rss_growth_mb"] < 200
