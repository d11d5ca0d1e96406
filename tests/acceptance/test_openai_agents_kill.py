"""kill -9 an OpenAI Agents SDK run (``duro.openai_agents``) between calls and in the
middle of a model call and of a tool call; after resume, no call that was recorded runs
again, and the result equals an uninterrupted run's.

The agent (``apps/agents_app.py``) makes three model calls and two tool calls; every
call appends ``start``/``done`` lines to a ledger, which the test counts. One run is
killed three times (mid model call, mid tool call, between calls); a call cut by a kill
recorded nothing, so it runs again (a second ``start``); every other call runs once.
SQLite: the store does not matter to what is replayed (both stores run the in-process
tests, tests/integration/test_openai_agents.py). Most of its time is four processes
importing the Agents SDK (about 2 s of CPU each).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import duro
from duro._history import EventKind
from tests.conftest import run, wait_until

APP = Path(__file__).parent / "apps" / "agents_app.py"
CALLS = ["model0", "add", "model1", "mul", "model2"]
EXPECTED = {"output": "The answer is 20.", "tokens": 45}


def _app(url: str, workflow_id: str, *, start: bool) -> list[str]:
    return [sys.executable, str(APP), "--url", url, "--id", workflow_id,
            *(["--start"] if start else [])]


def _env(ledger: Path, hold: str) -> dict[str, str]:
    root = str(Path(__file__).parents[2])
    return {**os.environ, "AGENTS_LEDGER": str(ledger), "AGENTS_HOLD": hold,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def _ledger(path: Path) -> Counter[str]:
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


async def _completed(url: str, workflow_id: str) -> int:
    async with duro.Client(url) as client:
        history = await client.get_handle(workflow_id).history()
    return sum(1 for e in history if e.kind == EventKind.STEP_COMPLETED)


async def _kill_at(url: str, workflow_id: str, ledger: Path, hold: str, wait_for: str,
                   recorded: int, *, start: bool) -> None:
    """Run a worker holding at ``hold``; SIGKILL it once ``wait_for`` is in the ledger
    and ``recorded`` steps are in the history."""
    proc = subprocess.Popen(_app(url, workflow_id, start=start), env=_env(ledger, hold),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_until(lambda: proc.poll() is not None or _ledger(ledger)[wait_for],
                         timeout=60)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        await wait_until(lambda: _recorded(url, workflow_id, recorded), timeout=10)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


async def _recorded(url: str, workflow_id: str, count: int) -> bool:
    return await _completed(url, workflow_id) >= count


async def _uninterrupted(url: str, ledger: Path) -> Any:
    """The same run in this process, never killed (its ledger: ``ledger``)."""
    from tests.acceptance.apps import agents_app
    agents_app._ledger = str(ledger)
    try:
        async with duro.Engine(url) as engine:
            handle = await engine.start(agents_app.compute, "what is (2 + 3) * 4?",
                                        id="agents-whole")
            return await handle.result(timeout=30)
    finally:
        agents_app._ledger = ""


def test_kill9_between_and_mid_calls(tmp_path: Path) -> None:
    url, ledger = f"sqlite:///{tmp_path}/duro.db", tmp_path / "killed.ledger"

    async def main() -> None:
        whole = tmp_path / "whole.ledger"
        assert await _uninterrupted(url, whole) == EXPECTED
        assert _ledger(whole) == Counter({f"{e} {c}": 1 for c in CALLS
                                          for e in ("start", "done")})
        # One run, killed three times: in the middle of model call 1, in the middle of
        # tool call mul, and between mul and model call 2 (held before it writes
        # anything, once mul is recorded); a fourth worker finishes it.
        for n, (hold, wait_for, recorded) in enumerate([("model1", "start model1", 2),
                                                        ("mul", "start mul", 3),
                                                        ("before:model2", "hold model2", 4)]):
            await _kill_at(url, "agents-killed", ledger, hold, wait_for, recorded,
                           start=n == 0)
        resumed = await asyncio.create_subprocess_exec(
            *_app(url, "agents-killed", start=False), env=_env(ledger, ""),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(resumed.communicate(), 60)
        assert resumed.returncode == 0, err.decode(errors="replace")[-3000:]
        assert json.loads(out.decode().splitlines()[-1]) == EXPECTED
        counts = _ledger(ledger)
        for call in CALLS:  # the calls cut by a kill ran again; no other call did
            assert counts[f"done {call}"] == 1, (call, counts)
            assert counts[f"start {call}"] == (2 if call in ("model1", "mul") else 1), (
                call, counts)
        async with duro.Client(url) as client:
            usage = await client.get_handle("agents-killed").usage()
        # Each model call's usage once: the cut attempt recorded none.
        assert (usage.total.calls, usage.total.input_tokens,
                usage.total.output_tokens) == (3, 30, 15), usage
        assert set(usage.by_step) == {"duro.openai_agents.model"}

    run(main(), timeout=240)
