"""Steps completed from outside (``duro.complete_later()`` and ``client.steps``): the
attempt hands out its token and ends without an outcome; whoever has the token
completes, fails or heartbeats it. The wait is recorded, so a restart waits on (the
step is not run again) and a completion sent while no worker runs is taken later.
Both stores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import duro
from tests.conftest import run, wait_for_event, wait_until

TOKENS: list[str] = []
SEEN: list[Any] = []


@duro.step(name="cl.review", retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01,
                                                    jitter=0))
async def review(doc: str) -> str:
    info = duro.step_info()
    SEEN.append(info.heartbeat_details)
    TOKENS.append(info.completion_token)  # handed to "the ticketing system"
    duro.complete_later()


@duro.workflow(name="cl.flow")
async def flow(doc: str) -> str:
    try:
        return "reviewed: " + await review(doc)
    except duro.StepFailedError as exc:
        return f"review failed: {exc.cause}"


async def _waiting(engine: duro.Client, wid: str, count: int = 1) -> str:
    async def asked() -> bool:
        info = await engine.get_handle(wid).describe()
        return len(TOKENS) >= count and info.status == duro.RunStatus.SUSPENDED

    await wait_until(asked)
    return TOKENS[-1]


@pytest.fixture(autouse=True)
def fresh() -> None:
    TOKENS.clear()
    SEEN.clear()


def test_a_step_completed_from_outside_by_its_token(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(flow, "spec", id="c1")
            token = await _waiting(engine, "c1")
            assert token == f"{handle.run_id}.1.1"
            started = [e for e in await handle.history() if e.kind == "step_started"]
            assert [e.meta for e in started] == [{"attempt": 1, "awaiting": True}]
            await engine.steps.complete(token, "looks good")
            assert await handle.result(timeout=20) == "reviewed: looks good"
            kinds = [e.kind for e in await handle.history()]
            assert kinds.count("step_completed") == 1
            with pytest.raises(duro.RunNotFoundError):  # the run has ended
                await engine.steps.complete(token, "again")

    run(main())


def test_a_completion_while_no_worker_runs_is_taken_after_a_restart(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(flow, "spec", id="c2")
            token = await _waiting(engine, "c2")
        async with duro.Client(any_db_url) as client:  # no worker anywhere
            await client.steps.heartbeat(token, {"done": 50})
            await client.steps.complete(token, "approved offline")
        async with duro.Engine(any_db_url) as engine:
            assert await engine.get_handle("c2").result(timeout=20) == \
                "reviewed: approved offline"
        assert [token] == TOKENS  # the restart waited on: the step did not run again
        assert handle.run_id in token

    run(main())


def test_failures_follow_the_retry_policy_and_heartbeats_reach_the_next_attempt(
        any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(flow, "spec", id="c3")
            first = await _waiting(engine, "c3")
            await engine.steps.heartbeat(first, {"page": 3})
            await engine.steps.fail(first, "the reviewer is away")
            second = await _waiting(engine, "c3", count=2)
            assert second == f"{handle.run_id}.1.2" and SEEN == [None, {"page": 3}]
            await engine.steps.complete(first, "stale")  # the old attempt: ignored
            await engine.steps.fail(second, "rejected for good", type="Rejected",
                                    non_retryable=True)
            result = await handle.result(timeout=20)
            assert result == "review failed: Rejected: rejected for good"
            kinds = [e.kind for e in await handle.history()]
            assert kinds.count("step_retrying") == 1 and kinds.count("step_failed") == 1
            assert "step_completed" not in kinds

    run(main())


def test_bad_tokens_and_failures_are_refused(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(flow, "spec", id="c4")
            token = await _waiting(engine, "c4")
            for bad in ("", "x", "a.b.c", f"{handle.run_id}.0.1", f"{handle.run_id}.1",
                        "bad\x00id.1.1"):
                with pytest.raises(duro.InvalidArgumentError, match="token"):
                    await engine.steps.complete(bad, 1)
            with pytest.raises(duro.RunNotFoundError):
                await engine.steps.complete("no-such-run.1.1", 1)
            with pytest.raises(duro.RunNotFoundError):  # another namespace's run
                await engine.with_namespace("other").steps.complete(token, 1)
            with pytest.raises(duro.InvalidArgumentError, match="message"):
                await engine.steps.fail(token, " ")
            with pytest.raises(duro.SerializationError):
                await engine.steps.complete(token, float("nan"))
            assert (await handle.describe()).status == duro.RunStatus.SUSPENDED
            await engine.steps.complete(token, "fine")
            assert await handle.result(timeout=20) == "reviewed: fine"

    run(main())


def test_complete_later_outside_a_step_is_refused() -> None:
    with pytest.raises(RuntimeError, match="inside a step"):
        duro.complete_later()
    assert asyncio.iscoroutinefunction(review.fn)


@duro.step(name="cl.slow_review", timeout=60,
           retry=duro.RetryPolicy(max_attempts=2, initial_interval=1, jitter=0))
async def slow_review(doc: str) -> str:
    TOKENS.append(duro.step_info().completion_token)
    duro.complete_later()


@duro.workflow(name="cl.timed")
async def timed(doc: str) -> str:
    try:
        return await slow_review(doc)
    except duro.StepFailedError as exc:
        return f"gave up: {exc.cause.type}"


def test_a_wait_past_the_steps_timeout_fails_the_attempt(any_db_url: str) -> None:
    clock = duro.ManualClock()

    async def main() -> None:
        async with duro.Engine(any_db_url, clock=clock, poll_interval=0.02) as engine:
            handle = await engine.start(timed, "spec", id="c5")
            first = await _waiting(engine, "c5")
            started = [e.meta for e in await handle.history() if e.kind == "step_started"]
            assert started[0]["deadline"] == pytest.approx(clock.now() + 60, abs=1)
            clock.advance(61)  # the wait times out: the policy retries (a new token)
            await wait_for_event(handle, "step_retrying")
            clock.advance(2)  # its backoff
            second = await _waiting(engine, "c5", count=2)
            assert (first, second) == (f"{handle.run_id}.1.1", f"{handle.run_id}.1.2")
            await engine.steps.complete(first, "too late")  # the timed-out attempt
            clock.advance(61)
            assert await handle.result(timeout=20) == "gave up: duro.errors.StepTimeoutError"
            kinds = [e.kind for e in await handle.history()]
            assert kinds.count("step_retrying") == 1 and "step_completed" not in kinds

    run(main())
