"""The app of the CLI acceptance tests for workflow semantics: signals, queries, updates,
published state, child workflows, retry/reset/fork and continue-as-new.

Workflow names are explicit (``sem.*``) so that importing this module next to other
test apps never clashes in the global registry. Steps that the tests count append a
line to the file ``log`` names, one per execution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duro


def _note(log: str, what: str) -> None:
    with open(log, "a", encoding="utf-8") as f:
        f.write(what + "\n")


@duro.step
def record(log: str, what: str) -> str:
    _note(log, what)
    return what


@duro.workflow(name="sem.waiter")
async def waiter() -> dict[str, Any]:
    """Publishes that it waits, then waits for the ``go`` signal."""
    phase = "waiting"
    duro.on_query("phase", lambda: phase)
    duro.set_state("phase", phase)
    payload = await duro.wait_for_signal("go")
    phase = "done"
    duro.set_state("phase", phase)
    return {"got": payload}


@duro.workflow(name="sem.counter")
async def counter(start: int = 0) -> int:
    """A counter changed by the ``add`` update (negative amounts are rejected), read by
    the ``count`` query and the ``count`` state; the ``stop`` signal ends it."""
    count = start
    stopped = False

    def read(plus: int = 0) -> int:
        return count + plus

    def validate(amount: int) -> None:
        if amount < 0:
            raise ValueError(f"cannot add a negative amount ({amount})")

    async def add(amount: int) -> int:
        nonlocal count
        count += amount
        duro.set_state("count", count)
        return count

    async def stall() -> None:
        await duro.wait_condition(lambda: False)

    def boom() -> None:
        raise RuntimeError("the handler broke")

    def stop(_: Any) -> None:
        nonlocal stopped
        stopped = True

    duro.on_query("count", read)
    duro.on_update("add", add, validator=validate)
    duro.on_update("stall", stall)
    duro.on_update("boom", boom)
    duro.on_signal("stop", stop)
    duro.set_state("count", count)
    duro.set_state("owner", {"name": "counter", "tags": ["a", "b"]})
    await duro.wait_condition(lambda: stopped)
    return count


@duro.step(retry=duro.RetryPolicy(max_attempts=1))
def needs_flag(log: str, flag: str) -> str:
    _note(log, "needs_flag")
    if not Path(flag).exists():
        raise RuntimeError(f"flag {flag} is not there yet")
    return "flag found"


@duro.workflow(name="sem.flaky")
async def flaky(log: str, flag: str) -> list[str]:
    """Fails until the file ``flag`` exists."""
    first = await record(log, "before")
    second = await needs_flag(log, flag)
    third = await record(log, "after")
    return [first, second, third]


@duro.workflow(name="sem.pipeline")
async def pipeline(log: str) -> list[str]:
    """Three recorded steps in a row."""
    return [await record(log, "one"), await record(log, "two"), await record(log, "three")]


@duro.workflow(name="sem.child")
async def child(n: int) -> int:
    duro.set_state("n", n)
    return n * 10


@duro.workflow(name="sem.parent")
async def parent(count: int) -> list[int]:
    """Runs ``count`` children, one after the other, with readable ids."""
    info = duro.info()
    results = []
    for n in range(count):
        results.append(await duro.execute_child(child, n, id=f"{info.workflow_id}-child-{n}"))
    return results


@duro.workflow(name="sem.looper")
async def looper(round: int = 0, rounds: int = 2, settle: bool = True) -> int:
    """Publishes ``round-N``, then continues as new ``rounds`` times (after a short
    durable sleep if ``settle``), and returns the round it reached."""
    duro.set_state(f"round-{round}", round)
    if round < rounds:
        if settle:
            await duro.sleep(0.01)
        duro.continue_as_new(round + 1, rounds, settle)
    return round


@duro.workflow(name="sem.sleeper")
async def sleeper(seconds: float = 60.0) -> str:
    """Sleeps (durably): started with a shorter execution timeout, it times out."""
    await duro.sleep(seconds)
    return "woke up"
