"""Smoke run of bench/bench_telemetry.py at its tiny size, so the script does not rot
(no timing thresholds: it checks every mode ran and the JSON has the figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import duro

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_telemetry.py"


def test_bench_telemetry_tiny_runs_and_writes_json(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    pytest.importorskip("prometheus_client")
    out = tmp_path / "telemetry.json"
    env = {**os.environ, "PYTHONPATH": str(Path(duro.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert [m["mode"] for m in data["modes"]] == ["off", "tracing", "metrics"]
    assert all(m["steps_per_s"] > 0 for m in data["modes"])
    assert data["modes"][0]["ratio_to_off"] == 1.0
