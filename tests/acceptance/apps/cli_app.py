"""A small app the CLI acceptance tests run: a workflow that completes (with a retried
step and a timer), one that fails, and one that sleeps long enough to be cancelled.

Workflow names are explicit (``cli.*``) so that importing this module next to other
test apps never clashes in the global registry."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import duro


class RateLimited(Exception):
    """What a flaky API raises."""


@duro.step
def add(a: int, b: int) -> int:
    return a + b


@duro.step(retry=duro.RetryPolicy(max_attempts=5, initial_interval=0.05, backoff=1.0,
                                  jitter=0.0))
def flaky(name: str) -> str:
    attempt = duro.step_info().attempt
    if attempt < 3:
        raise RateLimited(f"slow down (attempt {attempt})")
    return f"{name} after {attempt} attempts"


@duro.workflow(name="cli.greet")
async def greet(name: str, times: int = 1) -> dict[str, Any]:
    total = await add(times, 1)
    note = await flaky(name)
    await asyncio.sleep(0.05)
    return {"greeting": f"hello {name}", "total": total, "note": note}


@duro.step(retry=duro.RetryPolicy(max_attempts=2, initial_interval=0.01, jitter=0.0))
def explode(message: str) -> None:
    raise ValueError(message)


@duro.workflow(name="cli.fails")
async def fails(message: str = "boom") -> None:
    await explode(message)


@duro.workflow(name="cli.sleepy")
async def sleepy(seconds: float = 120.0) -> str:
    await add(1, 2)
    await asyncio.sleep(seconds)
    return "woke up"


@duro.workflow(name="cli.echo")
async def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@duro.step
async def nap(seconds: float) -> None:
    await asyncio.sleep(seconds)


@duro.workflow(name="cli.shifty")
async def shifty(seconds: float = 120.0) -> str:
    # Nondeterministic on purpose: which step runs depends on the environment, so a run
    # resumed under another CLI_APP_BRANCH no longer matches its history (and parks).
    if os.environ.get("CLI_APP_BRANCH", "a") == "a":
        await add(1, 1)
    else:
        await explode("never")
    await nap(seconds)  # a step in flight: an interrupted run is released, claimable at once
    return "done"


not_a_workflow = 42
