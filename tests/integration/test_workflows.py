"""Workflow semantics on a real SQLite file: steps, asyncio inside workflows, retries,
timeouts, heartbeats, ids, cancellation, termination."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

import duro
from duro.client import summarize_steps
from duro.testing import ManualClock
from tests.conftest import run, wait_until


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Store-agnostic tests: each runs on SQLite and on PostgreSQL (counters reset)."""
    CALLS.clear()
    return any_db_url

CALLS: dict[str, int] = {}


def bump(key: str) -> int:
    CALLS[key] = CALLS.get(key, 0) + 1
    return CALLS[key]


@dataclass
class Point:
    x: int
    when: datetime


@duro.step
async def double(x: int) -> int:
    return x * 2


STEP_THREADS: set[str] = set()


@duro.step
def sync_inc(x: int) -> int:
    STEP_THREADS.add(threading.current_thread().name)
    return x + 1


@duro.step
def make_point(x: int) -> Point:
    return Point(x=x, when=datetime(2024, 1, 2, 3, 4, 5))


@duro.workflow
async def wf_basic(x: int) -> dict[str, int]:
    a = await double(x)
    b = await sync_inc(a)
    p = await make_point(b)
    assert isinstance(p, Point) and isinstance(p.when, datetime)
    return {"a": a, "b": b, "x": p.x}


def test_steps_results_and_history(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_basic, 5, id="basic")
            STEP_THREADS.clear()
            assert await handle.result(timeout=10) == {"a": 10, "b": 11, "x": 11}
            assert all(name.startswith("duro-step") for name in STEP_THREADS)
            assert await handle.status() == duro.RunStatus.COMPLETED
            kinds = [e.kind for e in await handle.history()]
            assert kinds == ["run_started", "step_completed", "step_completed",
                             "step_completed", "run_completed"]
            steps = summarize_steps(await handle.history())
            assert [s.name.rsplit(".", 1)[-1] for s in steps] == ["double", "sync_inc",
                                                                   "make_point"]
            assert all(s.attempts == 1 and s.status == "completed" for s in steps)

    run(main())


def test_step_outside_workflow_runs_plain_function() -> None:
    STEP_THREADS.clear()
    assert run(double(4)) == 8
    assert run(sync_inc(1)) == 2  # awaiting runs it inline
    assert sync_inc.fn(1) == 2
    assert {"MainThread"} == STEP_THREADS


@duro.step
async def slow_echo(value: str, delay: float) -> str:
    await asyncio.sleep(delay)
    return value


@duro.workflow
async def wf_asyncio_features() -> list[object]:
    out: list[object] = []
    out.append(await asyncio.gather(double(1), double(2), sync_inc(3)))
    fast = asyncio.ensure_future(slow_echo("fast", 0.01))
    slow = asyncio.ensure_future(slow_echo("slow", 0.3))
    done, pending = await asyncio.wait([fast, slow], return_when=asyncio.FIRST_COMPLETED)
    out.append([t.result() for t in done])
    for t in pending:
        t.cancel()
    try:
        await asyncio.wait_for(slow_echo("late", 0.5), timeout=0.05)
    except TimeoutError:
        out.append("timed out")
    event = asyncio.Event()
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def producer() -> None:
        for i in range(3):
            await queue.put(await double(i))
        event.set()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(producer())
    await event.wait()
    out.append([queue.get_nowait() for _ in range(3)])
    lock = asyncio.Lock()
    async with lock:
        out.append(await sync_inc(41))
    return out


def test_asyncio_primitives_inside_workflows(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_asyncio_features)
            assert await handle.result(timeout=10) == [
                [2, 4, 4], ["fast"], "timed out", [0, 2, 4], 42]

    run(main())


@duro.step(retry=duro.RetryPolicy(max_attempts=4, initial_interval=0.01, jitter=0))
def flaky(key: str, fail_times: int) -> str:
    info = duro.step_info()
    n = bump(key)
    CALLS[f"{key}:keys"] = CALLS.get(f"{key}:keys", 0)
    keys = CALLS.setdefault(f"{key}:idem", set())  # type: ignore[arg-type]
    keys.add(info.idempotency_key)  # type: ignore[attr-defined]
    if n <= fail_times:
        raise ConnectionError(f"transient {n}")
    return f"ok after {info.attempt}"


@duro.workflow
async def wf_flaky(key: str, fail_times: int) -> str:
    try:
        return await flaky(key, fail_times)
    except duro.StepFailedError as exc:
        return f"gave up: {exc.error_type} after {exc.attempts}"


def test_retries_then_success_with_stable_idempotency_key(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_flaky, "r1", 2)
            assert await handle.result(timeout=10) == "ok after 3"
            history = await handle.history()
            retrying = [e for e in history if e.kind == "step_retrying"]
            assert [e.meta["attempt"] for e in retrying] == [1, 2]
            assert retrying[0].data["type"] == "ConnectionError"
            assert "transient 1" in retrying[0].data["message"]
            assert "Traceback" in retrying[0].data["traceback"]
            assert len(CALLS["r1:idem"]) == 1  # type: ignore[arg-type]
            [summary] = summarize_steps(history)
            assert summary.attempts == 3 and summary.status == "completed"

    run(main())


def test_retries_exhausted_raise_step_failed_in_workflow(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_flaky, "r2", 99)
            assert await handle.result(timeout=10) == "gave up: ConnectionError after 4"
            assert CALLS["r2"] == 4
            kinds = [e.kind for e in await handle.history()]
            assert kinds.count("step_retrying") == 3 and kinds.count("step_failed") == 1

    run(main())


class PaymentDeclined(Exception):
    pass


@duro.step(retry=duro.RetryPolicy(max_attempts=5, initial_interval=0.01,
                                  non_retryable=(PaymentDeclined, "KeyError")))
def charge(kind: str) -> str:
    bump(f"charge-{kind}")
    if kind == "declined":
        raise PaymentDeclined("card declined")
    if kind == "keyerror":
        raise KeyError("no such card")
    raise duro.NonRetryableError("fatal")


@duro.workflow
async def wf_charge(kind: str) -> str:
    return await charge(kind)


@pytest.mark.parametrize("kind", ["declined", "keyerror", "fatal"])
def test_non_retryable_errors_fail_at_once(db_url: str, kind: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_charge, kind)
            with pytest.raises(duro.WorkflowFailedError) as info:
                await handle.result(timeout=10)
            assert info.value.cause.type == "duro.errors.StepFailedError"
            assert CALLS[f"charge-{kind}"] == 1

    run(main())


@duro.step(retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01))
def rate_limited() -> int:
    if duro.step_info().attempt == 1:
        raise duro.RetryAfterError("429", retry_after=timedelta(minutes=30))
    return duro.step_info().attempt


@duro.workflow
async def wf_rate_limited() -> int:
    return await rate_limited()


def test_retry_after_suspends_for_the_requested_delay(db_url: str) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock) as engine:
            handle = await engine.start(wf_rate_limited)

            async def suspended() -> bool:
                return await handle.status() == duro.RunStatus.SUSPENDED

            await wait_until(suspended)
            info = await handle.describe()
            assert info.wake_at is not None
            assert abs(info.wake_at.timestamp() - (clock.now() + 1800)) < 1
            clock.advance(1799)
            await asyncio.sleep(0.3)
            # Loaded ahead of its retry (the worker's look-ahead), but not retried early.
            assert engine.worker is not None and engine.worker.steps_executed == 1
            assert [e.kind for e in await handle.history()] == ["run_started",
                                                                "step_retrying"]
            clock.advance(2)
            assert await handle.result(timeout=10) == 2

    run(main())


@duro.step(timeout=0.1, retry=duro.RetryPolicy(max_attempts=2, initial_interval=0.01))
async def sometimes_hangs() -> str:
    if duro.step_info().attempt == 1:
        await asyncio.sleep(10)
    return "second attempt"


@duro.step(timeout=0.1, retry=duro.RetryPolicy(max_attempts=2, initial_interval=0.01))
def sync_hangs() -> str:
    info = duro.step_info()
    if info.attempt == 1:
        deadline = time.monotonic() + 5
        while not info.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        return "abandoned"
    return "sync second attempt"


@duro.workflow
async def wf_timeouts() -> list[str]:
    return [await sometimes_hangs(), await sync_hangs()]


def test_per_attempt_timeouts_retry(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_timeouts)
            assert await handle.result(timeout=10) == ["second attempt", "sync second attempt"]
            errors = [e.data["type"] for e in await handle.history()
                      if e.kind == "step_retrying"]
            assert errors == ["duro.errors.StepTimeoutError"] * 2

    run(main())


@duro.step(total_timeout=0.3, retry=duro.RetryPolicy(max_attempts=0, initial_interval=0.05,
                                                     backoff=1, jitter=0))
def never_works() -> None:
    raise ConnectionError("down")


@duro.workflow
async def wf_total_timeout() -> str:
    try:
        await never_works()
    except duro.StepFailedError as exc:
        return exc.cause.message
    return "unreachable"


def test_total_timeout_bounds_unlimited_retries(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_total_timeout)
            message = await handle.result(timeout=10)
            assert "total timeout" in message
            attempts = [e for e in await handle.history() if e.kind.startswith("step_")]
            assert 2 <= len(attempts) <= 10

    run(main())


@duro.step(heartbeat_timeout=0.2, retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01))
async def long_job(items: int) -> dict[str, object]:
    info = duro.step_info()
    start = (info.heartbeat_details or {}).get("done", 0)
    seen = info.heartbeat_details
    for i in range(start, items):
        duro.heartbeat({"done": i + 1})
        await asyncio.sleep(0.01)
        if info.attempt == 1 and i == 4:
            await asyncio.sleep(5)  # stops heartbeating: the attempt must time out
    return {"attempt": info.attempt, "resumed_from": start, "seen": seen}


@duro.workflow
async def wf_heartbeat() -> dict[str, object]:
    return await long_job(10)


def test_heartbeat_timeout_and_details_reach_the_next_attempt(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_heartbeat)
            result = await handle.result(timeout=10)
            assert result == {"attempt": 2, "resumed_from": 5, "seen": {"done": 5}}
            [retry] = [e for e in await handle.history() if e.kind == "step_retrying"]
            assert "no heartbeat" in retry.data["message"]
            assert retry.meta["heartbeat"] == {"done": 5}

    run(main())


@duro.workflow
async def wf_fails(msg: str) -> None:
    await double(1)
    raise ValueError(msg)


def test_workflow_failure_is_recorded_with_type_message_traceback(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_fails, "bad input")
            with pytest.raises(duro.WorkflowFailedError) as info:
                await handle.result(timeout=10)
            assert info.value.cause.type == "ValueError"
            assert info.value.cause.message == "bad input"
            assert "wf_fails" in info.value.cause.traceback
            assert (await handle.describe()).status == duro.RunStatus.FAILED

    run(main())


@duro.workflow
async def wf_sleeper(seconds: float) -> str:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        await double(21)  # cleanup still runs durably
        raise
    return "woke"


def test_workflow_id_is_the_idempotency_key(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            first = await engine.start(wf_sleeper, 0.2, id="same")
            again = await engine.start(wf_sleeper, 0.2, id="same")
            assert again.run_id == first.run_id
            with pytest.raises(duro.WorkflowAlreadyStartedError):
                await engine.start(wf_sleeper, 0.2, id="same", on_conflict="fail")
            assert await first.result(timeout=10) == "woke"
            # finished: by default the id still names that run
            after = await engine.start(wf_sleeper, 0.2, id="same")
            assert after.run_id == first.run_id
            with pytest.raises(duro.WorkflowAlreadyStartedError):
                await engine.start(wf_sleeper, 0.2, id="same", on_reuse="fail")
            with pytest.raises(duro.WorkflowAlreadyStartedError):
                await engine.start(wf_sleeper, 0.2, id="same", on_reuse="allow_failed")
            fresh = await engine.start(wf_sleeper, 0.01, id="same", on_reuse="allow")
            assert fresh.run_id != first.run_id
            assert await fresh.result(timeout=10) == "woke"
            runs = await engine.list(name="wf_sleeper")
            assert len([r for r in runs if r.workflow_id == "same"]) == 2

    run(main())


def test_concurrent_starts_of_one_id_create_one_run(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handles = await asyncio.gather(
                *(engine.start(wf_sleeper, 0.05, id="race") for _ in range(20)))
            assert len({h.run_id for h in handles}) == 1
            assert len(await engine.list(name="wf_sleeper")) == 1

    run(main())


def test_cancel_raises_cancelled_error_in_the_workflow(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_sleeper, 3600)
            await wait_until(lambda: handle.status())
            await wait_until(
                lambda: _status_is(handle, duro.RunStatus.SUSPENDED))
            await handle.cancel()
            with pytest.raises(duro.WorkflowCancelledError):
                await handle.result(timeout=10)
            kinds = [e.kind for e in await handle.history()]
            assert kinds == ["run_started", "cancel_requested", "step_completed",
                             "run_cancelled"]

    run(main())


async def _status_is(handle: duro.WorkflowHandle[object], status: duro.RunStatus) -> bool:
    return await handle.status() == status


def test_terminate_stops_at_once(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(wf_sleeper, 3600)
            await wait_until(lambda: _status_is(handle, duro.RunStatus.SUSPENDED))
            await handle.terminate("operator said so")
            with pytest.raises(duro.WorkflowTerminatedError, match="operator said so"):
                await handle.result(timeout=10)
            kinds = [e.kind for e in await handle.history()]
            assert kinds == ["run_started", "run_terminated"]
            with pytest.raises(duro.RunNotFoundError):
                await engine.terminate(handle.workflow_id)

    run(main())


@duro.workflow
async def wf_deterministic_values() -> list[str]:
    values = [str(duro.random()), str(duro.uuid4()), duro.now().isoformat()]
    await asyncio.sleep(60)
    values += [str(duro.random()), duro.now().isoformat(), duro.info().workflow_id]
    return values


def test_now_random_uuid_are_stable_across_replay(db_url: str) -> None:
    clock = ManualClock(start=1_700_000_000)

    async def main() -> list[str]:
        async with duro.Engine(db_url, clock=clock) as engine:
            handle = await engine.start(wf_deterministic_values, id="det")
            await wait_until(lambda: _status_is(handle, duro.RunStatus.SUSPENDED))
        # a fresh engine has no cached instance: the run is rebuilt by replay
        async with duro.Engine(db_url, clock=clock) as engine:
            clock.advance(61)
            return await engine.get_handle("det").result(timeout=10)  # type: ignore[no-any-return]

    values = run(main())
    assert values[2] == "2023-11-14T22:13:20+00:00"
    assert values[4] == "2023-11-14T22:14:21+00:00"  # the time the timer fired
    assert values[5] == "det"
    # same run id -> same stream of random values, also in a plain replay
    from duro.testing import replay

    async def history() -> list[duro.Event]:
        async with duro.Engine(db_url, worker=False) as engine:
            handle = engine.get_handle("det")
            return await handle.history()

    events = run(history())
    run_id = run(_run_id(db_url, "det"))
    replayed = replay(wf_deterministic_values, events, run_id=run_id, workflow_id="det")
    assert replayed.status == "completed" and replayed.result == values


async def _run_id(db_url: str, workflow_id: str) -> str:
    async with duro.Engine(db_url, worker=False) as engine:
        return (await engine.get_handle(workflow_id).describe()).run_id


RUNNING = {"now": 0, "peak": 0}


@duro.step
async def counted_work() -> None:
    RUNNING["now"] += 1
    RUNNING["peak"] = max(RUNNING["peak"], RUNNING["now"])
    await asyncio.sleep(0.005)
    RUNNING["now"] -= 1


@duro.workflow
async def wf_counted() -> None:
    await counted_work()
    await asyncio.sleep(0.01)
    await counted_work()


@pytest.mark.parametrize("max_active", [1, 3])
def test_max_active_holds_while_starting_and_claiming(db_url: str, max_active: int) -> None:
    RUNNING.update(now=0, peak=0)

    async def main() -> None:
        async with duro.Engine(db_url, max_active=max_active) as engine:
            handles = [await engine.start(wf_counted) for _ in range(60)]
            await asyncio.gather(*(h.result(timeout=30) for h in handles))

    run(main())
    assert RUNNING["peak"] == max_active
