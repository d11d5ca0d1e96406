"""The chaos suite (bench/chaos.py, short configuration): worker processes SIGKILLed at
random while runs take steps and receive signals (with and without continue-as-new) and
updates, with a fault injected at random into the writers' batches. Every run completes
with the right result, every signal and acknowledged update is applied exactly once, no
history has a gap, no step completion is recorded twice, nothing is left in an inbox.
For a soak, run the script itself with bigger numbers (its docstring says how)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres",
                                                          marks=pytest.mark.postgres)])
def test_chaos(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    out = tmp_path / "chaos.json"
    cmd = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--store", store,
           "--json", str(out)]
    if store == "postgres":
        cmd += ["--db", request.getfixturevalue("pg_url")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.exists(), proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["violations"] == [], proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["completed"] == report["runs"] == 24
    assert report["kills"] >= 10, report  # workers died mid-work, many times
    assert report["faults_hit"] >= 1, report  # and writes failed inside batches
    assert report["signals_sent"] == 144 and report["updates_sent"] == 60
    assert report["step_executions"] >= report["step_completions"] > 0
    print(proc.stdout)
