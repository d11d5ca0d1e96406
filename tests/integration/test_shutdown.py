"""Graceful shutdown: a draining worker finishes running steps, starts no new ones, and
hands its runs to another worker without losing or repeating work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import duro
from tests.conftest import run

DONE: list[str] = []


@duro.step(name="shut.slow")
async def slow(tag: str) -> str:
    await asyncio.sleep(0.3)
    DONE.append(tag)
    return tag


@duro.workflow(name="shut.pipeline")
async def pipeline() -> list[str]:
    return [await slow("first"), await slow("second")]


def test_drain_finishes_the_running_step_and_hands_the_run_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/drain.db"
    DONE.clear()

    async def main() -> None:
        async with duro.Engine(url, poll_interval=0.02) as leaving:
            handle = await leaving.start(pipeline, id="drained")
            await asyncio.sleep(0.1)  # "first" is running
            assert leaving.worker is not None
            assert await leaving.worker.drain(grace=5) is True
            assert DONE == ["first"], "the running attempt finished; no new one started"
            assert await handle.status() in (duro.RunStatus.SUSPENDED,
                                             duro.RunStatus.PENDING)
        async with duro.Engine(url, poll_interval=0.02) as other:
            assert await other.get_handle("drained").result(timeout=10) == [
                "first", "second"]
        assert DONE == ["first", "second"], "nothing ran twice"

    run(main())
