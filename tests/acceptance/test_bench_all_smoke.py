"""Smoke run of bench/bench_all.py at tiny sizes, so the full benchmark does not rot.

No timing thresholds: it checks that every workload runs and reports figures, that the
JSON, the charts and the generated docs section are written (to temporary paths).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg import unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_all.py"


def _run(tmp_path: Path, stores: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    out, docs, charts = tmp_path / "all.json", tmp_path / "benchmarks.md", tmp_path / "png"
    docs.write_text("# Benchmarks\n\nHand-written text stays.\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--no-peers", "--stores", stores,
         "--json", str(out), "--docs", str(docs), "--charts", str(charts)],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    data = json.loads(out.read_text())
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written text stays.")
    assert "bench_all:begin" in text and "| workload | duro SQLite |" in text
    assert (charts / "sequential.png").read_bytes()[:4] == b"\x89PNG"
    return data, text


def _check_store(d: dict) -> None:  # type: ignore[type-arg]
    assert d["start"]["from_call_ms_median"] > 0
    assert d["replay"]["events"] == 100 and d["replay"]["load_replay_ms"] > 0
    assert d["replay"]["replay_ms"] > 0
    assert d["sleepers"]["runs"] == 200 and d["sleepers"]["rss_mb"] > 0
    assert d["sleepers"]["checkpoints"][-1][0] == 200
    assert d["timers"]["woken"] == 100 and d["timers"]["lag_ms_p99"] is not None


def test_bench_all_tiny_sqlite(tmp_path: Path) -> None:
    data, text = _run(tmp_path, "sqlite")
    assert data["sqlite"]["core"]["duro"]["async"]["sequential"]["median_per_step_ms"] > 0
    _check_store(data["sqlite"]["duro"])
    assert "Smoke sizes" in text
    for name in ("start", "replay", "sleepers", "timers", "throughput"):
        assert (tmp_path / "png" / f"{name}.png").exists(), name


@pytest.mark.postgres
def test_bench_all_tiny_postgres(tmp_path: Path) -> None:
    reason = unavailable_reason(local=True)
    if reason:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    data, _ = _run(tmp_path, "postgres")
    pg = data["postgres"]
    assert pg["core"]["duro"]["throughput"]["median_steps_per_s"] > 0
    assert set(pg["core"]["duro"]["processes"]) == {"1", "2"}
    _check_store(pg["duro"])
    fo = pg["duro"]["failover"]
    for mode in ("lease_expiry", "same_host"):
        assert fo[mode]["orphans"] >= 1 and fo[mode]["taken_over"] >= 1, fo
    assert (tmp_path / "png" / "failover.png").exists()
