"""The workflow the PostgreSQL worker processes serve, importable without side effects
(the test process imports it to start runs; apps/pg_worker.py serves it)."""

from __future__ import annotations

import asyncio
import time
from typing import TextIO

import duro


class Log:
    """Where this process records step attempts; set by the worker before it serves."""

    name = "?"
    file: TextIO | None = None


@duro.step(name="mh.work")
async def work(key: str, i: int, delay: float) -> str:
    assert Log.file is not None, "the worker process sets Log.file before serving"
    Log.file.write(f"start {key} {i} {Log.name} {time.time():.6f}\n")
    await asyncio.sleep(delay)
    Log.file.write(f"done {key} {i} {Log.name} {time.time():.6f}\n")
    return Log.name


@duro.workflow(name="mh_chain")
async def mh_chain(key: str, steps: int, delay: float) -> list[str]:
    return [await work(key, i, delay) for i in range(steps)]


WORKFLOWS = [mh_chain]
