"""User code cannot kill or wedge a worker: whatever workflow, step, handler, validator or
query code raises becomes a recorded failure of that run (or of that call), and the
worker goes on serving every other run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import duro
from tests.conftest import run

ONCE = duro.RetryPolicy(max_attempts=1)
TWICE = duro.RetryPolicy(max_attempts=2, initial_interval=0.01, jitter=0.0)


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")


class Custom(BaseException):
    """Not an Exception: a BaseException subclass of the user's own."""


RAISE: dict[str, Any] = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": lambda: KeyboardInterrupt(),
    "GeneratorExit": lambda: GeneratorExit(),
    "CancelledError": lambda: asyncio.CancelledError(),
    "Custom": lambda: Custom("mine"),
    "BadStr": lambda: BadStr(),
}


@duro.step(name="hostile.async_raiser", retry=TWICE)
async def async_raiser(kind: str) -> str:
    if duro.step_info().attempt == 1:
        raise RAISE[kind]()
    return f"recovered from {kind}"


@duro.step(name="hostile.sync_raiser", retry=TWICE)
def sync_raiser(kind: str) -> str:
    if duro.step_info().attempt == 1:
        raise RAISE[kind]()
    return f"recovered from {kind}"


@duro.step(name="hostile.always", retry=ONCE)
async def always(kind: str) -> str:
    raise RAISE[kind]()


@duro.workflow(name="hostile.steps")
async def steps_wf(kind: str) -> list[str]:
    return [await async_raiser(kind), await sync_raiser(kind)]


@duro.workflow(name="hostile.fails_for_good")
async def fails_for_good(kind: str) -> str:
    return await always(kind)


@duro.workflow(name="hostile.workflow_raises")
async def workflow_raises(kind: str) -> str:
    await asyncio.sleep(0)
    raise RAISE[kind]()


@duro.workflow(name="hostile.fine")
async def fine(x: int) -> int:
    return x + 1


@pytest.mark.parametrize("kind", sorted(RAISE))
def test_a_step_raising_anything_is_a_failed_attempt(db_url: str, kind: str) -> None:
    """SystemExit, KeyboardInterrupt, GeneratorExit, CancelledError, a BaseException of
    the user's own, an exception whose str() raises: each is one failed attempt of the
    step (retried by its policy), never a dead worker or a run left running forever."""

    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(steps_wf, kind)
            assert await handle.result(timeout=20) == [f"recovered from {kind}"] * 2
            failing = await engine.start(fails_for_good, kind)
            with pytest.raises(duro.WorkflowFailedError) as info:
                await failing.result(timeout=20)
            assert info.value.cause is not None
            assert info.value.cause.type == "duro.errors.StepFailedError"
            assert f"{kind}" in info.value.cause.message
            assert await (await engine.start(fine, 1)).result(timeout=20) == 2

    run(main())


@pytest.mark.parametrize("kind", sorted(RAISE))
def test_a_workflow_raising_anything_fails_its_run(db_url: str, kind: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(workflow_raises, kind)
            if kind == "CancelledError":
                with pytest.raises(duro.WorkflowCancelledError):
                    await handle.result(timeout=20)
            else:
                with pytest.raises(duro.WorkflowFailedError) as info:
                    await handle.result(timeout=20)
                assert info.value.cause is not None
                assert info.value.cause.type.endswith(kind)
            assert await (await engine.start(fine, 1)).result(timeout=20) == 2

    run(main())


@duro.workflow(name="hostile.handlers")
async def handlers(mode: str) -> str:
    def sync_handler(v: int) -> None:
        if v == 1:
            raise ValueError("bad signal value")

    async def async_handler(v: int) -> None:
        await asyncio.sleep(0)
        if v == 1:
            raise SystemExit("handler exits")

    def validator(v: int) -> None:
        raise SystemExit("validator exits")

    def query() -> str:
        raise SystemExit("query exits")

    duro.on_signal("s", sync_handler if mode == "sync" else async_handler)
    duro.on_update("u", lambda v: v, validator)
    duro.on_query("q", query)
    await duro.wait_for_signal("never")
    return "unreachable"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_signal_handler_that_raises_fails_the_run(any_db_url: str, mode: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(handlers, mode)
            await handle.signal("s", 0)
            await handle.signal("s", 1)
            with pytest.raises(duro.WorkflowFailedError) as info:
                await handle.result(timeout=20)
            assert info.value.cause is not None
            assert info.value.cause.type == ("ValueError" if mode == "sync" else "SystemExit")

    run(main())


def test_validators_and_queries_that_exit_fail_only_their_call(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(handlers, "sync")
            with pytest.raises(duro.UpdateRejectedError, match="SystemExit"):
                await handle.update("u", 1, timeout=20)
            with pytest.raises(duro.QueryError, match="SystemExit"):
                await handle.query("q")
            assert not (await handle.status()).is_terminal  # the run is unharmed
            assert await (await engine.start(fine, 1)).result(timeout=20) == 2

    run(main())
