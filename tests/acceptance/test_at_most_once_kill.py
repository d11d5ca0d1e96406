"""kill -9 during an at-most-once step: never executed twice, the workflow decides.

Each trial starts a run whose ``@duro.step(at_most_once=True)`` step writes one line to
a log (its external side effect: ``os.write`` on an ``O_APPEND`` descriptor, which a
SIGKILL cannot undo) and then blocks; the test SIGKILLs the process once the line is
there, then runs the app again to resume the run. Every trial must end with exactly one
execution logged for its run and the workflow having caught
``StepOutcomeUnknownError`` (``apps/amo_app.py``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

APP = Path(__file__).parent / "apps" / "amo_app.py"
TRIALS = {"sqlite": 20, "postgres": 20}


def _lines_of(log: Path, workflow_id: str) -> list[str]:
    return [line for line in log.read_text().splitlines()
            if line.split(" ", 1)[0] == workflow_id]


def _wait_for_execution(proc: subprocess.Popen[bytes], log: Path, workflow_id: str) -> None:
    deadline = time.monotonic() + 20
    while not _lines_of(log, workflow_id):
        assert proc.poll() is None, f"app exited with {proc.returncode} before the step ran"
        assert time.monotonic() < deadline, "the step did not run within 20 s"
        time.sleep(0.01)


def _trial(url: str, log: Path, workflow_id: str) -> None:
    base = [sys.executable, str(APP), "--url", url, "--log", str(log), "--id", workflow_id]
    first = subprocess.Popen([*base, "--block"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        _wait_for_execution(first, log, workflow_id)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    resumed = subprocess.run(base, capture_output=True, timeout=60, check=False)
    assert resumed.returncode == 0, resumed.stderr.decode(errors="replace")[-3000:]
    result = json.loads(resumed.stdout.decode().strip().splitlines()[-1])
    executions = _lines_of(log, workflow_id)
    assert len(executions) == 1, (workflow_id, executions)
    assert result == {"unknown": 1, "reconciled": "looked-up:10"}, (workflow_id, result)


def test_kill9_during_at_most_once_step(any_db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "side-effects.log"
    log.touch()
    store = "sqlite" if any_db_url.startswith("sqlite") else "postgres"
    for trial in range(TRIALS[store]):
        _trial(any_db_url, log, f"amo-{trial}")
    assert len(log.read_text().splitlines()) == TRIALS[store]
