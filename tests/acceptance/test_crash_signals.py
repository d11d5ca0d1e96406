"""Signals survive kill -9: each is delivered exactly once, in the order sent."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import duro
from tests.acceptance.apps.signal_app import collect
from tests.conftest import run

APP = Path(__file__).parent / "apps" / "signal_app.py"
SIGNALS = 40
KILLS = 8


def test_signals_keep_their_order_and_arrive_once_across_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "signals.db"
    url = f"sqlite:///{db}"
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    ctx = f"[seed={seed}]"

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(APP), url], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])

    async def main() -> list[int]:
        async with duro.Engine(url, worker=False) as client:
            handle = await client.start(collect, SIGNALS, id="collector")
            proc = spawn()
            kills = 0
            try:
                for i in range(SIGNALS):
                    await client.signal("collector", "v", i)
                    if kills < KILLS and rng.random() < KILLS / SIGNALS * 1.5:
                        await asyncio.sleep(rng.uniform(0.15, 0.6))
                        proc.kill()
                        proc.wait(timeout=10)
                        kills += 1
                        proc = spawn()
                    else:
                        await asyncio.sleep(rng.uniform(0.0, 0.02))
                result: list[int] = await handle.result(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
            assert kills >= 3, f"too few kills landed {ctx}"
            return result

    result = run(main(), timeout=120)
    assert result == list(range(SIGNALS)), f"{result} {ctx}"
    with sqlite3.connect(db) as conn:
        received = [int(r[0]) for r in conn.execute(
            "SELECT e.data FROM events e JOIN runs r USING (run_id) WHERE r.workflow_id = "
            "'collector' AND e.kind = 'signal_received' ORDER BY e.seq")]
        notes = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT op) FROM events e JOIN runs r USING (run_id) "
            "WHERE r.workflow_id = 'collector' AND e.kind = 'step_completed'").fetchone()
        left = conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
    assert received == list(range(SIGNALS)), f"signals recorded {received} {ctx}"
    assert notes == (SIGNALS, SIGNALS), f"step completions {notes} {ctx}"
    assert left == 0, f"{left} messages left in the inbox {ctx}"
