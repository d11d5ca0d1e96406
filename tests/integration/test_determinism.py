"""Determinism: nondeterministic code changes park runs; patched() lets old and new runs
coexist; races replay with their recorded winner."""

from __future__ import annotations

import asyncio

import pytest

import duro
from duro.testing import ManualClock, replay
from tests.conftest import run, wait_until


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Store-agnostic tests: each runs on SQLite and on PostgreSQL."""
    return any_db_url

EXECUTED: list[str] = []


@duro.step
def step_a() -> str:
    EXECUTED.append("a")
    return "a"


@duro.step
def step_b() -> str:
    EXECUTED.append("b")
    return "b"


@duro.step
def step_c() -> str:
    EXECUTED.append("c")
    return "c"


async def order_v1_code() -> str:
    first = await step_a()
    await asyncio.sleep(3600)
    return first + await step_b()


async def order_v2_code() -> str:  # a bad deploy: the steps swapped places
    first = await step_b()
    await asyncio.sleep(3600)
    return first + await step_a()


async def order_v3_code() -> str:  # the fix: back to the original order
    first = await step_a()
    await asyncio.sleep(3600)
    second = await step_b()
    return first + second


order_v1 = duro.Workflow(order_v1_code, name="order_wf")
order_v2 = duro.Workflow(order_v2_code, name="order_wf")
order_v3 = duro.Workflow(order_v3_code, name="order_wf")


async def _status(engine: duro.Engine, wid: str) -> duro.RunStatus:
    return await engine.get_handle(wid).status()


def test_reordered_steps_park_the_run_until_fixed_code_runs(db_url: str) -> None:
    clock = ManualClock()
    EXECUTED.clear()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock, workflows=[order_v1]) as engine:
            await engine.start(order_v1, id="order-1")
            await wait_until(lambda: _is(engine, "order-1", duro.RunStatus.SUSPENDED))
        assert EXECUTED == ["a"]

        async with duro.Engine(db_url, clock=clock, workflows=[order_v2]) as engine:
            clock.advance(3601)
            await wait_until(lambda: _is(engine, "order-1", duro.RunStatus.PARKED))
            info = await engine.get_handle("order-1").describe()
            assert info.error is not None and info.error.type == "NondeterminismError"
            message = info.error.message
            assert "seq 1" in message
            assert "step_a" in message and "step_b" in message
            history = await engine.get_handle("order-1").history()
            assert [e.kind for e in history] == ["run_started", "step_completed"]
        assert EXECUTED == ["a"], "a parked run must not run any step"

        async with duro.Engine(db_url, clock=clock, workflows=[order_v3]) as engine:
            assert await engine.get_handle("order-1").result(timeout=10) == "ab"
        assert EXECUTED == ["a", "b"]

    run(main())


async def _is(engine: duro.Engine, wid: str, status: duro.RunStatus) -> bool:
    return await _status(engine, wid) == status


async def patch_v1_code() -> str:
    await step_a()
    await asyncio.sleep(10)
    await step_b()
    await asyncio.sleep(3600)
    return "old"


async def patch_v2_code() -> str:
    await step_a()
    new = duro.patched("add-c")
    if new:
        await step_c()
    await asyncio.sleep(10)
    await step_b()
    await asyncio.sleep(3600)
    return "new" if new else "old path on new code"


patch_v1 = duro.Workflow(patch_v1_code, name="patch_wf")
patch_v2 = duro.Workflow(patch_v2_code, name="patch_wf")


def test_patched_lets_old_and_new_runs_coexist(db_url: str) -> None:
    clock = ManualClock()
    EXECUTED.clear()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock, workflows=[patch_v1]) as engine:
            await engine.start(patch_v1, id="old-run")
            await wait_until(lambda: _is(engine, "old-run", duro.RunStatus.SUSPENDED))
            clock.advance(11)
            await wait_until(lambda: _history_has(engine, "old-run", 2))
            await wait_until(lambda: _is(engine, "old-run", duro.RunStatus.SUSPENDED))

        async with duro.Engine(db_url, clock=clock, workflows=[patch_v2]) as engine:
            await engine.start(patch_v2, id="new-run")
            await wait_until(lambda: _is(engine, "new-run", duro.RunStatus.SUSPENDED))
            clock.advance(11)
            await wait_until(lambda: _history_has(engine, "new-run", 3))
            clock.advance(3601)
            assert await engine.get_handle("old-run").result(timeout=10) == \
                "old path on new code"
            assert await engine.get_handle("new-run").result(timeout=10) == "new"
            old = await engine.get_handle("old-run").history()
            new = await engine.get_handle("new-run").history()
            assert [e.name.rsplit(".", 1)[-1] for e in old if e.kind == "step_completed"] == \
                ["step_a", "step_b"]
            assert [e.name.rsplit(".", 1)[-1] for e in new if e.kind == "step_completed"] == \
                ["step_a", "step_c", "step_b"]
            assert [e.name for e in new if e.kind == "marker"] == ["add-c"]
            assert not [e for e in old if e.kind == "marker"]

    run(main())


async def _history_has(engine: duro.Engine, wid: str, steps: int) -> bool:
    history = await engine.get_handle(wid).history()
    return len([e for e in history if e.kind == "step_completed"]) >= steps


@duro.step
async def echo_after(value: str, delay: float) -> str:
    await asyncio.sleep(delay)
    return value


@duro.workflow
async def race_wf() -> str:
    slow = asyncio.ensure_future(echo_after("slow", 0.4))  # op 1
    fast = asyncio.ensure_future(echo_after("fast", 0.01))  # op 2
    done, _ = await asyncio.wait([slow, fast], return_when=asyncio.FIRST_COMPLETED)
    winner = done.pop().result()
    await slow  # both finish; the slow one is recorded second
    await asyncio.sleep(3600)
    return str(winner)


def test_first_completed_replays_with_the_recorded_winner(db_url: str) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock) as engine:
            await engine.start(race_wf, id="race-1")
            await wait_until(lambda: _is(engine, "race-1", duro.RunStatus.SUSPENDED))
            history = await engine.get_handle("race-1").history()
        completed = [e for e in history if e.kind == "step_completed"]
        assert [e.op for e in completed] == [2, 1], "the fast step (op 2) was recorded first"
        # Replayed in recorded order, the fast step wins again (op order would pick 'slow').
        replayed = replay(race_wf, history)
        assert replayed.status == "waiting" and replayed.pending == [(3, "timer", None)]
        # And a fresh engine (no cached instance) resumes the run by replay to the same end.
        async with duro.Engine(db_url, clock=clock) as engine:
            clock.advance(3601)
            assert await engine.get_handle("race-1").result(timeout=10) == "fast"

    run(main())
