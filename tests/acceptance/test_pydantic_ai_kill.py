"""kill -9 of a pydantic-ai agent run on duro (issue 21): the agent of
``apps/pydantic_ai_app.py`` (three model calls, two tool calls, ``FunctionModel``) runs
in worker processes that the test SIGKILLs mid-call (in a model call, in a tool call)
and between calls (as soon as a tool call has returned); the next process resumes the
run. Every call writes to a ledger when it begins: no call whose step was recorded
before a kill runs again, only the one cut (or not yet recorded) runs twice, and the
output is the uninterrupted run's. SQLite only: the store does not matter here (the
steps are ordinary duro steps; tests/integration/test_pydantic_ai.py runs the agent on
both stores)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import duro
from duro._history import EventKind
from tests.acceptance.apps import pydantic_ai_app as app
from tests.conftest import run, wait_until

APP = Path(__file__).parent / "apps" / "pydantic_ai_app.py"
CALLS = ["model1", "lookup:Paris", "model2", "convert:21.0", "model3"]
OUTPUT = "Paris: 21C = 69.8F"


def _entered(ledger: Path) -> list[str]:
    text = ledger.read_text() if ledger.exists() else ""
    return [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("enter ")]


async def _resume(base: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *base, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    result: str = json.loads(out.decode().splitlines()[-1])
    return result


async def _recorded(url: str, workflow_id: str) -> int:
    """How many calls the history had recorded when the worker was killed."""
    async with duro.Client(url) as client:
        events = await client.get_handle(workflow_id).history()
    return sum(e.kind == EventKind.STEP_COMPLETED for e in events)


async def _kill(base: list[str], ledger: Path, *, hang_at: int,
                after_exit: str | None = None) -> None:
    """Run a worker until the ``hang_at``-th call has begun (mid-call), or until the
    call ``after_exit`` has returned (between calls), then SIGKILL it."""
    proc = subprocess.Popen([*base, "--hang-at", str(hang_at)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def reached() -> bool:
        if proc.poll() is not None:
            return True
        if after_exit is None:
            return len(_entered(ledger)) >= hang_at
        return ledger.exists() and f"exit {after_exit}\n" in ledger.read_text()

    try:
        await wait_until(reached, timeout=30)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def test_pydantic_ai_agent_survives_kill9(tmp_path: Path) -> None:
    """One run, killed three times: in model call 2; in tool call 2; just after tool
    call 2 returned (run again after the second kill), before model call 3. The calls
    the history had recorded at a kill are never entered after it."""
    url = f"sqlite:///{tmp_path}/duro.db"

    async def main() -> None:
        app.LEDGER = tmp_path / "ref.ledger"  # uninterrupted, in this process
        async with duro.Engine(url) as engine:
            ref = await engine.start(app.weather, "How warm is Paris?", id="ref")
            assert await ref.result(timeout=30) == OUTPUT
        assert _entered(app.LEDGER) == CALLS

        ledger = tmp_path / "run.ledger"
        base = [sys.executable, str(APP), "--url", url, "--id", "killed",
                "--ledger", str(ledger)]
        async with duro.Client(url) as client:  # the store only: the workers run it
            await client.start(app.weather, "How warm is Paris?", id="killed")
        marks = []
        for hang_at, after_exit in ((3, None), (5, None), (7, "convert:21.0")):
            await _kill(base, ledger, hang_at=hang_at, after_exit=after_exit)
            marks.append((await _recorded(url, "killed"), len(_entered(ledger))))
        assert [m[0] for m in marks[:2]] == [2, 3]  # mid-call: all before it recorded
        assert await _resume(base) == OUTPUT
        entered = _entered(ledger)
        for recorded, before in marks:
            assert not set(entered[before:]) & set(CALLS[:recorded]), (recorded, entered)
        # each call entered in order; a call cut by a kill entered again right after
        assert [c for i, c in enumerate(entered) if i == 0 or entered[i - 1] != c] == CALLS
        assert len(entered) in (len(CALLS) + 2, len(CALLS) + 3), entered

    run(main(), timeout=240)
