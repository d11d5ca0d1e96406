"""A worker process for the poison-run test: one workflow's step kills its own process
(SIGKILL, as a crash in a C extension or the OOM killer would); another workflow is
healthy. Serves until every run of either has ended or parked, or for ``SECONDS``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import duro

SECONDS = 20.0


@duro.step(name="poison.note")
async def note(i: int) -> int:
    return i


@duro.step(name="poison.kill")
async def kill_my_process() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@duro.workflow(name="poison.killer")
async def killer() -> str:
    await note(1)  # progress first: recorded once, not again on each recovery
    await kill_my_process()
    return "unreachable"


@duro.workflow(name="poison.healthy")
async def healthy(n: int) -> int:
    total = 0
    for i in range(n):
        total += await note(i)
    return total


async def main(url: str, max_recoveries: int) -> None:
    deadline = time.monotonic() + SECONDS
    async with duro.Engine(url, lease=1.0, poll_interval=0.05,
                           max_recoveries=max_recoveries) as engine:
        while time.monotonic() < deadline:
            runs = await engine.list()
            if runs and all(r.status.is_terminal or r.status.value == "parked"
                            for r in runs):
                return
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
