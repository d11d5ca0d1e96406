"""kill -9 through a LangGraph graph run by ``duro.langgraph.durable_graph``
(``apps/lgraph_app.py``: plan, search, fetch, answer as step nodes; review, a workflow
node that notifies through ``step_task`` and ``interrupt()``s).

A worker process is SIGKILLed mid-node (``search``, after part of its work), then
between nodes (``answer`` entered, nothing of it done), then while the run waits on the
interrupt; a last worker finishes it once the test answers the interrupt with the
``resume`` signal. The ledger the nodes write proves no completed node ran twice and the
side effect before ``interrupt()`` ran once; the result equals an uninterrupted run's.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langgraph")

import duro
from duro._history import EventKind
from tests.conftest import run, wait_until

APP = Path(__file__).parent / "apps" / "lgraph_app.py"
NODES = ("plan", "search", "fetch", "answer")


def _lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


async def _killed_at(base: list[str], env: dict[str, str], ledger: Path, line: str,
                     *extra: str, recorded: tuple[str, str] | None = None) -> None:
    """Start a worker, wait for ``line`` in the ledger (and, with ``recorded=(url,
    workflow_id)``, for the run's history to hold the outcome of the step that wrote
    it), SIGKILL it."""
    proc = subprocess.Popen([*base, *extra], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        await wait_until(lambda: line in _lines(ledger) or proc.poll() is not None,
                         timeout=30)
        if recorded is not None:  # else the kill may cut the step before its outcome
            url, workflow_id = recorded
            async with duro.Client(url) as client:
                handle = client.get_handle(workflow_id)

                async def done() -> bool:
                    return proc.poll() is not None or any(
                        e.kind == EventKind.STEP_COMPLETED and e.name.endswith(line)
                        for e in await handle.history())

                await wait_until(done, timeout=30)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


async def _scenario(url: str, tmp: Path, workflow_id: str, *, kill: bool) -> object:
    ledger = tmp / f"{workflow_id}.ledger"
    env = {**os.environ, "LGRAPH_LEDGER": str(ledger)}
    base = [sys.executable, str(APP), "--url", url, "--id", workflow_id]
    if kill:
        await _killed_at(base, env, ledger, "half search", "--start", "--pause", "search")
        await _killed_at(base, env, ledger, "half answer", "--pause", "answer")
        await _killed_at(base, env, ledger, "notify",  # now waiting on the interrupt
                         recorded=(url, workflow_id))
        last = await asyncio.create_subprocess_exec(*base, env=env,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
    else:
        last = await asyncio.create_subprocess_exec(*base, "--start", env=env,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
    async with duro.Client(url) as client:
        await wait_until(lambda: "notify" in _lines(ledger), timeout=30)
        await client.get_handle(workflow_id).signal("resume", "approved")
    out, err = await asyncio.wait_for(last.communicate(), 60)
    assert last.returncode == 0, err.decode(errors="replace")[-3000:]
    lines = _lines(ledger)
    for node in NODES:  # each node's work completed exactly once
        assert lines.count(f"done {node}") == 1, (node, lines)
    assert lines.count("notify") == 1, lines  # the side effect before interrupt()
    if kill:  # the cut nodes ran again; the others did not
        assert lines.count("enter search") == 2 and lines.count("enter answer") == 2, lines
        assert lines.count("enter plan") == lines.count("enter fetch") == 1, lines
    return json.loads(out.decode().splitlines()[-1])


def test_graph_survives_kill9_between_and_mid_node(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/duro.db"
    killed = run(_scenario(url, tmp_path, "lg-killed", kill=True), timeout=240)
    plain = run(_scenario(url, tmp_path, "lg-plain", kill=False), timeout=120)
    assert killed == plain
    assert isinstance(killed, dict) and killed["verdict"].startswith("approved (notified")
