"""Smoke run of bench/bench_stats.py at its tiny size, so the script does not rot.

No timing thresholds: it only checks that the script fills a store and that the stats
read counts every run it wrote (and the newest tenth for the window)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duro

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_stats.py"


def test_bench_stats_tiny_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    env = {**os.environ, "PYTHONPATH": str(Path(duro.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert (data["runs"], data["events"]) == (1000, 10_000)
    assert data["reads"]["all runs"]["runs_counted"] == 1000
    assert data["reads"]["newest 10%"]["runs_counted"] == 100
    assert all(r["median_s"] > 0 for r in data["reads"].values())
