"""Smoke run of bench/bench_postgres.py at tiny sizes, so the script does not rot.

No timing thresholds: it only checks that the script runs and reports positive figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg import unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_postgres.py"

pytestmark = pytest.mark.postgres


def test_bench_postgres_tiny_runs_and_writes_json(tmp_path: Path) -> None:
    reason = unavailable_reason(local=True)
    if reason:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    out = tmp_path / "pg.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--no-peers", "--procs", "1,2",
         "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["fsync"] == "on"
    duro = data["duro"]
    assert duro["sequential"]["median_per_step_ms"] > 0
    assert duro["throughput"]["median_steps_per_s"] > 0
    assert set(duro["processes"]) == {"1", "2"}
    assert all(p["median_steps_per_s"] > 0 for p in duro["processes"].values())
    assert "client + 2 worker process(es)" in proc.stdout
