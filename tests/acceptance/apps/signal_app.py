"""A worker process for the signal crash test: serves until its runs are complete."""

from __future__ import annotations

import asyncio
import sys

import duro


@duro.step(name="sig.note")
def note(value: int) -> int:
    return value


@duro.workflow(name="sig.collect")
async def collect(n: int) -> list[int]:
    got: list[int] = []
    while len(got) < n:
        value = await duro.wait_for_signal("v", type=int)
        assert value is not None
        got.append(await note(value))
    return got


async def main(url: str) -> None:
    async with duro.Engine(url, lease=1.0, poll_interval=0.05) as engine:
        while True:
            runs = await engine.list(name="sig.collect")
            if runs and all(r.status.is_terminal for r in runs):
                return
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
