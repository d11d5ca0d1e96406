"""Smoke run of bench/bench_stream.py at its tiny size, so the script does not rot.

No timing thresholds: it only checks that every chunk reached the reader (the script
asserts it) and that the figures are written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duro

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_stream.py"


def test_bench_stream_tiny_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "stream.json"
    env = {**os.environ, "PYTHONPATH": str(Path(duro.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["chunks"] == 500
    assert [(r["store"], r["rate"]) for r in data["results"]] == [("SQLite", 20_000),
                                                                  ("SQLite", 0)]
    for result in data["results"]:
        median = result["median"]
        assert median["step_chunks_per_s"] > 0 and 0 < median["p50_ms"] <= median["p99_ms"]
