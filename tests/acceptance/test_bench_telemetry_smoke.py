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


def _run(script: str, *args: str) -> None:
    """Run a bench script of the tree at its tiny size, with this duro importable."""
    env = {**os.environ, "PYTHONPATH": str(Path(duro.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--tiny", *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bench_telemetry_tiny_runs_and_writes_json(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    pytest.importorskip("prometheus_client")
    out = tmp_path / "telemetry.json"
    _run("bench_telemetry.py", "--json", str(out))
    data = json.loads(out.read_text())
    assert [m["mode"] for m in data["modes"]] == ["off", "tracing", "tracing-batch", "metrics"]
    assert all(m["steps_per_s"] > 0 for m in data["modes"])
    assert data["modes"][0]["ratio_to_off"] == 1.0


def test_bench_telemetry_parts_runs_every_part(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    out = tmp_path / "parts.json"
    _run("bench_telemetry.py", "--parts", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["parts"] is True
    assert [m["mode"] for m in data["modes"]] == [
        "off", "idle", "header", "start", "runs", "tracing", "no-processor"]
    assert all(m["steps_per_s"] > 0 for m in data["modes"])
    assert data["modes"][0]["extra_cpu_us_per_step"] == 0.0


def test_bench_step_span_tiny_runs_and_writes_json(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    out = tmp_path / "span.json"
    _run("bench_step_span.py", "--json", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [r["caches"] for r in rows] == ["hot", "cold"]
    for row in rows:
        assert set(row["parts_us"]) == {"run_entry", "made", "current", "ended", "on_end"}
        assert row["total_us"] > 0 and row["attempt_us"] > 0
