"""Smoke run of bench/bench_http.py at tiny sizes, so the script does not rot.

No timing thresholds: it only checks that the script runs a real ``duro serve`` under
load and reports positive figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_http.py"


def test_bench_http_tiny_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "http.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert set(data["stores"]) == {"sqlite, closed loop", "sqlite, 200/s offered"}
    for summary in data["stores"].values():
        assert summary["median_p50_ms"] > 0 and summary["median_starts_per_s"] > 0
        assert summary["median_p99_ms"] >= summary["median_p50_ms"]
        assert all(r["requests"] == 40 for r in summary["runs"])
    assert "sqlite, closed loop" in proc.stdout


def test_bench_http_floor_runs_its_three_servers(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_http_floor.py"),
                           "--rates", "200", "--clients", "4", "--requests", "40",
                           "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert [(r["server"], r["load"]) for r in rows] == [
        (server, load) for server in ("echo", "asgi", "asgi+sqlite")
        for load in ("200/s", "closed loop")]
    assert all(r["requests"] == 40 and r["p50_ms"] > 0 for r in rows)
