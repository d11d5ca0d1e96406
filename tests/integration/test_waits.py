"""What a run waits for now (``handle.waiting()``, issue 19): the signal names its code
awaits and since when, its pending timers with the time each was set and is due (as
its worker recorded them when it suspended), and its steps routed to a queue that no
worker has claimed yet; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest

import duro
from duro._history import EventKind
from tests.conftest import run


@duro.step(name="wt.embed", queue="wt-gpu")
def embed(text: str) -> int:
    return len(text)


@duro.workflow(name="wt.gate")
async def gate(item: str) -> str:
    await duro.sleep(0.05)  # the wait below begins at this timer's time, not the start
    answer = await duro.wait_for_signal("approve", timeout=3600)
    return f"{item}: {answer}"


@duro.workflow(name="wt.index")
async def index(text: str) -> int:
    return await embed(text)


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Store-agnostic tests: each runs on SQLite and on PostgreSQL."""
    return any_db_url


async def _until(handle: duro.WorkflowHandle[object], predicate: object) -> duro.RunWaits:
    deadline = time.monotonic() + 10
    while True:  # bounded: the worker suspends the run within a few polls
        waits = await handle.waiting()
        if callable(predicate) and predicate(waits):
            return waits
        assert time.monotonic() < deadline, waits
        await asyncio.sleep(0.02)


def test_a_suspended_run_says_which_signal_and_timer_it_waits_for(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, poll_interval=0.02) as engine:
            handle = await engine.start(gate, "a", id="wt-gate")
            waits = await _until(handle, lambda w: w.status == "suspended")
            assert waits.recorded
            assert [s.name for s in waits.signals] == ["approve"]
            history = await handle.history()
            fired = next(e for e in history if e.kind == EventKind.TIMER_FIRED)
            # The fired timer says when it was set and was due (the UI draws it exactly).
            started = history[0].time.timestamp()
            assert fired.meta["set_at"] == pytest.approx(started, abs=1e-6)
            assert fired.meta["due_at"] == pytest.approx(started + 0.05, abs=1e-6)
            # Since the workflow's time when it began waiting: the sleep's firing.
            assert waits.signals[0].since == fired.time
            (timer,) = waits.timers
            assert timer.set_at == fired.time
            assert 3599 < (timer.fire_at - timer.set_at).total_seconds() < 3601
            assert waits.tasks == () and waits.conditions == 0
            assert duro.RunWaits.from_json(waits.to_json()) == waits
            await handle.signal("approve", "yes")
            assert await handle.result(timeout=10) == "a: yes"
            done = await handle.waiting()  # ended: what it waited for is no longer shown
            assert not done.recorded and done.signals == () and done.timers == ()

    run(main())


def test_a_step_on_a_queue_no_worker_serves_is_not_yet_claimed(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, queues=["default"], poll_interval=0.02) as engine:
            handle = await engine.start(index, "hello", id="wt-index")
            waits = await _until(handle, lambda w: w.status == "suspended" and w.tasks)
            (task,) = waits.tasks
            assert (task.step, task.queue, task.attempt, task.claimed_by) == (
                "wt.embed", "wt-gpu", 1, None)
            assert waits.signals == ()
            async with duro.Engine(db_url, queues=["wt-gpu"], poll_interval=0.02):
                assert await handle.result(timeout=10) == 5
            assert (await handle.waiting()).tasks == ()

    run(main())
