"""``duro stats`` (table and ``--json``, on the database and through ``--url``),
``GET /v1/stats`` on a real ``duro serve`` process, and the remote client's ``stats``:
each gives the figures the embedded client computes (which tests/integration/
test_stats.py checks against the raw histories)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duro
from duro.client import Stats
from tests.acceptance.serving import DURO_SRC, problem, serve
from tests.conftest import run
from tests.integration.test_stats import _mix


def _duro(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(DURO_SRC)}
    env.pop("DURO_DB", None)
    return subprocess.run([sys.executable, "-m", "duro", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def _figures(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k != "since"}


def test_cli_http_and_remote_client_agree_with_the_client(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/stats.db"

    async def setup() -> tuple[Stats, Stats]:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            await _mix(engine)
        async with duro.Client(url) as client:
            return await client.stats(), await client.stats(workflow="stats.bad")

    everything, bad = run(setup())
    assert everything.workflows and everything.steps and everything.errors

    # The CLI on the database: JSON, a window, a table.
    proc = _duro("--db", url, "stats", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == everything.to_json()
    before = time.time()
    proc = _duro("--db", url, "stats", "--since", "1h", "--workflow", "stats.bad", "--json")
    assert proc.returncode == 0, proc.stderr
    windowed = json.loads(proc.stdout)
    assert _figures(windowed) == _figures(bad.to_json())
    since = datetime.fromisoformat(windowed["since"]).timestamp()
    assert before - 3600 - 60 < since <= time.time() - 3600
    table = _duro("--db", url, "stats").stdout
    assert "stats.flaky" in table and "KeyError" in table and "STARTED" in table
    assert _duro("--db", url, "stats", "--since", "soon").returncode == 2
    assert _duro("--db", url, "stats", "--since", "1h", "--workflow", "nothing").stdout \
        .strip() == "no runs"

    with serve(url) as served:
        import httpx

        with httpx.Client(base_url=served.url, timeout=30) as http:
            assert http.get("/v1/stats").json() == everything.to_json()
            got = http.get("/v1/stats", params={"since": "7d", "workflow": "stats.bad"})
            assert _figures(got.json()) == _figures(bad.to_json())
            epoch = http.get("/v1/stats", params={"since": "0"}).json()
            assert _figures(epoch) == _figures(everything.to_json())
            iso = http.get("/v1/stats", params={"since": "2000-01-01T00:00:00Z"}).json()
            assert _figures(iso) == _figures(everything.to_json())
            for bad_since in ("soon", "2024-01-01T00:00:00", "99999999999999d", "", "-5s",
                              "999999999999999999999999999999", "-1e30"):
                problem(http.get("/v1/stats", params={"since": bad_since}), 400,
                        "invalid_argument")
            problem(http.get("/v1/stats", params={"workflow": ""}), 400, "invalid_argument")

        async def remote() -> None:
            async with duro.Client(served.url) as client:
                assert await client.stats() == everything
                windowed = await client.stats(since=timedelta(days=7), workflow="stats.bad")
                assert _figures(windowed.to_json()) == _figures(bad.to_json())
                assert windowed.since is not None
                at = await client.stats(since=datetime(2000, 1, 1, tzinfo=UTC))
                assert _figures(at.to_json()) == _figures(everything.to_json())

        run(remote())
        proc = _duro("--url", served.url, "stats", "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == everything.to_json()
