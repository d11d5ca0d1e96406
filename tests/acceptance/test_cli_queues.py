"""``duro queues`` shows depth, running count and limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duro
from tests.conftest import run

BATCH = duro.Queue("cli-batch", concurrency=2, rate_limit=5, rate_period=60)


@duro.workflow(name="cliq.noop")
async def noop() -> None:
    return None


def test_queues_command_reports_depth_and_limits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db"

    async def setup() -> None:
        # A worker stores the declared limits; it serves no queue, so runs stay pending.
        async with duro.Engine(url, queues=[]) as engine:
            for _ in range(3):
                await engine.start(noop, queue="cli-batch")
            await engine.start(noop)

    run(setup())
    proc = subprocess.run([sys.executable, "-m", "duro", "--db", url, "queues", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    queues = {q["queue"]: q for q in json.loads(proc.stdout)}
    assert queues["cli-batch"]["pending"] == 3
    assert queues["cli-batch"]["limits"]["concurrency"] == 2
    assert queues["cli-batch"]["limits"]["rate_limit"] == 5
    assert queues["default"]["pending"] == 1
    text = subprocess.run([sys.executable, "-m", "duro", "--db", url, "queues"],
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 0
    assert "cli-batch" in text.stdout and "5/60s" in text.stdout
