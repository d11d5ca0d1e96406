"""``@duro.step(at_most_once=True)`` on both stores: each attempt's start is committed
before the step runs; an attempt whose worker was lost (here: the engine closed while it
ran, which abandons it) is not run again, and the workflow gets a catchable
``StepOutcomeUnknownError``, recorded so that replay gives the same answer.
(``tests/acceptance/test_at_most_once_kill.py`` does the same with SIGKILL.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import duro
from duro.testing import replay
from tests.conftest import run, wait_until

CALLS: dict[str, int] = {}
BLOCK: set[str] = set()  # keys whose next call blocks until abandoned


@pytest.fixture
def db_url(any_db_url: str) -> str:
    CALLS.clear()
    BLOCK.clear()
    return any_db_url


def _bump(key: str) -> int:
    CALLS[key] = CALLS.get(key, 0) + 1
    return CALLS[key]


@duro.step(name="amo.send", at_most_once=True,
           retry=duro.RetryPolicy(max_attempts=4, initial_interval=0.01, jitter=0))
async def send(key: str, fail_times: int = 0) -> str:
    n = _bump(key)
    if key in BLOCK and n > fail_times:
        await asyncio.Event().wait()  # the side effect happened; the worker is lost now
    if n <= fail_times:
        raise ConnectionError(f"refused (call {n})")
    return f"sent:{key}"


@duro.step(name="amo.lookup")
async def lookup(key: str) -> str:
    return f"found:{key}:{CALLS.get(key, 0)}"


@duro.step(name="amo.plain")
async def plain(key: str) -> str:
    return f"plain:{key}"


@duro.step(name="amo.slow", at_most_once=True, timeout=0.05,
           retry=duro.RetryPolicy(max_attempts=5, initial_interval=0.01, jitter=0))
async def slow(key: str) -> str:
    _bump(key)
    await asyncio.sleep(10)
    return "late"


@duro.workflow(name="amo.flow")
async def amo_flow(key: str, fail_times: int = 0) -> dict[str, Any]:
    try:
        return {"sent": await send(key, fail_times)}
    except duro.StepOutcomeUnknownError as exc:
        # Reconcile: ask the other system what happened, with a step.
        return {"unknown": exc.attempts, "error": exc.error_type,
                "reconciled": await lookup(key)}


@duro.workflow(name="amo.mixed")
async def amo_mixed(key: str) -> list[str]:
    return [await plain(key), await send(key)]


@duro.workflow(name="amo.timeout")
async def amo_timeout(key: str) -> str:
    try:
        return await slow(key)
    except duro.StepOutcomeUnknownError:
        return "unknown"


async def _history(handle: duro.WorkflowHandle[Any]) -> list[tuple[str, Any]]:
    return [(e.kind, e.meta.get("attempt")) for e in await handle.history()
            if e.kind.startswith("step_")]


def test_completes_with_its_start_recorded_first(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(amo_mixed, "k1", id="amo-ok")
            assert await handle.result(timeout=10) == ["plain:k1", "sent:k1"]
            events = [(e.kind, e.name) for e in await handle.history()]
            # The plain step writes nothing more than before: only its outcome.
            assert events == [("run_started", "amo.mixed"), ("step_completed", "amo.plain"),
                              ("step_started", "amo.send"), ("step_completed", "amo.send"),
                              ("run_completed", None)]
            assert CALLS == {"k1": 1}

    run(main())


def test_failures_it_raises_are_retried_each_start_recorded(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(amo_flow, "k2", 2, id="amo-retry")
            assert await handle.result(timeout=10) == {"sent": "sent:k2"}
            assert await _history(handle) == [
                ("step_started", 1), ("step_retrying", 1), ("step_started", 2),
                ("step_retrying", 2), ("step_started", 3), ("step_completed", 3)]
            assert CALLS == {"k2": 3}

    run(main())


def test_lost_attempt_is_not_run_again_and_the_workflow_reconciles(db_url: str) -> None:
    async def main() -> None:
        BLOCK.add("k3")
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(amo_flow, "k3", id="amo-lost")
            await wait_until(lambda: CALLS.get("k3") == 1)
        # The engine closed mid-attempt: the attempt was abandoned, its outcome unknown.
        async with duro.Engine(db_url) as engine:
            handle = engine.get_handle("amo-lost")
            result = await handle.result(timeout=10)
            assert result == {"unknown": 1, "error": "duro.errors.StepOutcomeUnknownError",
                              "reconciled": "found:k3:1"}
            assert CALLS == {"k3": 1}
            assert await _history(handle) == [
                ("step_started", 1), ("step_failed", 1), ("step_completed", 1)]
            events = await handle.history()
            failed = next(e for e in events if e.kind == "step_failed")
            assert failed.meta == {"attempt": 1, "outcome_unknown": True}
            # Replay decides the same way, from the record alone (no step runs).
            replayed = replay(amo_flow, events, run_id=(await handle.describe()).run_id,
                              workflow_id="amo-lost")
            assert replayed.status == "completed" and replayed.result == result
            assert CALLS == {"k3": 1}

    run(main())


def test_lost_attempt_after_a_retry_keeps_the_earlier_outcome(db_url: str) -> None:
    async def main() -> None:
        BLOCK.add("k4")  # the first call fails, the second blocks and is lost
        async with duro.Engine(db_url) as engine:
            await engine.start(amo_flow, "k4", 1, id="amo-lost-2")
            await wait_until(lambda: CALLS.get("k4") == 2)
        async with duro.Engine(db_url) as engine:
            handle = engine.get_handle("amo-lost-2")
            result = await handle.result(timeout=10)
            assert result["unknown"] == 2 and result["reconciled"] == "found:k4:2"
            assert CALLS == {"k4": 2}
            assert await _history(handle) == [
                ("step_started", 1), ("step_retrying", 1), ("step_started", 2),
                ("step_failed", 2), ("step_completed", 1)]

    run(main())


def test_timed_out_attempt_is_an_unknown_outcome_not_retried(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(amo_timeout, "k5", id="amo-timeout")
            assert await handle.result(timeout=10) == "unknown"
            assert CALLS == {"k5": 1}
            assert await _history(handle) == [("step_started", 1), ("step_failed", 1)]

    run(main())


def test_at_most_once_options_are_checked() -> None:
    with pytest.raises(duro.InvalidArgumentError, match="queue"):
        duro.step(at_most_once=True, queue="gpu")(lambda: 1)
    with pytest.raises(duro.InvalidArgumentError, match="True or False"):
        duro.step(at_most_once="yes")(lambda: 1)  # type: ignore[call-overload]
    assert issubclass(duro.StepOutcomeUnknownError, duro.StepFailedError)
