"""Smoke run of bench/bench_core.py at tiny sizes, so the script does not rot.

No timing thresholds: it only checks that the script runs and reports positive figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_core.py"


def test_bench_core_tiny_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "core.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--no-peers", "--json", str(out),
         "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sequential" in proc.stdout and "throughput" in proc.stdout

    data = json.loads(out.read_text())
    duro = data["duro"]["async"]
    seq, tp = duro["sequential"], duro["throughput"]
    assert seq["median_per_step_ms"] > 0
    assert seq["median_cycle_ms"] > 0
    assert tp["median_steps_per_s"] > 0
    assert tp["median_workflows_per_s"] > 0
    for workload, steps in ((seq, 5), (tp, 10 * 2)):
        (run,) = workload["runs"]
        assert run["synchronous"] == "FULL" and run["journal_mode"] == "wal"
        # Every step was committed: at least one write per step, in >= 1 transaction.
        assert run["write_operations"] >= steps
        assert run["write_transactions"] >= 1
    assert data["peers"] == {}
    # The temporary databases are cleaned up.
    assert not any(p.name.startswith("duro-bench-") for p in tmp_path.iterdir())
