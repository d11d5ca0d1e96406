"""kill -9 mid-stream: a worker process runs a step that streams chunks slowly; the test
SIGKILLs it mid-stream and starts another worker, which runs the attempt again (with the
same attempt number: the lost one recorded nothing). A reader in the test process,
reading the store from the start and live throughout, must see the lost execution's
chunks, then a ``superseded`` marker for them, then every chunk of the successful
execution exactly once, in order; read again afterwards, the lost chunks come marked
superseded (``apps/stream_app.py``)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import duro
from tests.conftest import run, wait_until

APP = Path(__file__).parent / "apps" / "stream_app.py"
CHUNKS = 40
TRIALS = 2


async def _trial(url: str, workflow_id: str) -> None:
    base = [sys.executable, str(APP), "--url", url, "--id", workflow_id,
            "--chunks", str(CHUNKS)]
    first = subprocess.Popen([*base, "--start"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    seen: list[duro.StreamChunk] = []
    async with duro.Client(url) as client:  # the store only: no worker here
        try:
            await wait_until(lambda: _started(client, workflow_id), timeout=20)

            async def follow() -> None:
                async for chunk in client.get_handle(workflow_id).stream():
                    seen.append(chunk)

            reader = asyncio.ensure_future(follow())
            await wait_until(lambda: len(seen) >= 10 or first.poll() is not None, timeout=20)
            assert first.poll() is None, "the worker exited before the kill"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        resumed = await asyncio.create_subprocess_exec(
            *base, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(resumed.communicate(), 60)
        assert resumed.returncode == 0, err.decode(errors="replace")[-3000:]
        assert json.loads(out.decode().splitlines()[-1]) == f"{CHUNKS} chunks"
        await asyncio.wait_for(reader, 20)  # ends with the run
        _check_live(seen)
        again = [c async for c in client.get_handle(workflow_id).stream()]
    assert [c.offset for c in again] == [c.offset for c in seen]
    kept = [c for c in again if c.kind == "chunk" and not c.superseded]
    assert [c.data for c in kept] == [f"c{i}" for i in range(CHUNKS)]
    lost = [c for c in again if c.superseded]
    assert lost and all(c.execution == seen[0].execution for c in lost)


async def _started(client: duro.Client, workflow_id: str) -> bool:
    return bool(await client.list(id_prefix=workflow_id, limit=1))


def _check_live(seen: list[duro.StreamChunk]) -> None:
    """What the live reader got: offsets dense; the lost execution's chunks, the
    marker, then the successful execution's, each once, in order."""
    assert [c.offset for c in seen] == list(range(len(seen)))
    marker = next(i for i, c in enumerate(seen) if c.kind == "superseded")
    lost, winner = seen[:marker], seen[marker + 1:]
    assert len(lost) >= 10 and len({c.execution for c in lost}) == 1
    assert [c.data for c in lost] == [f"c{i}" for i in range(len(lost))]
    assert seen[marker].op == lost[0].op and seen[marker].attempt == lost[0].attempt == 1
    assert [c.data for c in winner] == [f"c{i}" for i in range(CHUNKS)]
    assert {c.execution for c in winner} == {seen[marker].execution}
    assert not any(c.superseded for c in winner)
    assert lost[0].execution != seen[marker].execution


def test_kill9_mid_stream(any_db_url: str) -> None:
    for trial in range(TRIALS):
        run(_trial(any_db_url, f"sk-{trial}"), timeout=120)
