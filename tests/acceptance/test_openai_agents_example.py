"""``examples/openai_agents_run.py`` runs offline: the Agents SDK's own Chat Completions
model on the local server, three model calls and two tool calls as steps, the answer
streamed and the usage printed (its kill -9 behaviour is the one of
test_openai_agents_kill.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "openai_agents_run.py"


def test_example_runs_offline(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--db", str(tmp_path / "a.db")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = "Based on 2 tool results: Durable execution records each step in a history."
    assert f"answer: {answer}" in done.stdout
    assert "model calls recorded: 3" in done.stdout
    assert "requests this process made to the model: 3" in done.stdout
