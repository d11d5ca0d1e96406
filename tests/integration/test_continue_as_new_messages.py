"""Signals and updates are never lost at continue-as-new.

A message the run received (recorded in its history, or still waiting in its inbox) is
either applied by that run's code or carried into the next run of the chain, in order;
an update's caller is told "done" only when the update's effect is part of the run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

import duro
from duro.store import Message, NewEvent
from tests.conftest import run


@duro.workflow(name="can.one_signal_per_run")
async def one_signal_per_run(seen: list[str]) -> list[str]:
    value = await duro.wait_for_signal("s", type=str)
    seen = [*seen, value]
    if value == "stop":
        return seen
    duro.continue_as_new(seen)
    raise AssertionError("unreachable")


def test_signals_sent_quickly_survive_continue_as_new(any_db_url: str) -> None:
    """The run takes one signal and continues as new; a, b, c, stop sent at once. Before
    the fix the first run recorded all four, carried none, and the next waited forever."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(one_signal_per_run, [], id="quick")
            for value in ["a", "b", "c", "stop"]:
                await engine.signal("quick", "s", value)
            assert await handle.result(timeout=20) == ["a", "b", "c", "stop"]

    run(main())


@duro.workflow(name="can.handler_batches")
async def handler_batches(total: int, per_run: int, got: list[int]) -> list[int]:
    batch: list[int] = []
    duro.on_signal("add", lambda v: batch.append(v))
    await duro.wait_condition(lambda: len(batch) >= per_run or len(got) + len(batch) >= total)
    got = [*got, *batch]
    if len(got) >= total:
        return got
    duro.continue_as_new(total, per_run, got)
    raise AssertionError("unreachable")


def test_signals_to_a_handler_survive_continue_as_new(any_db_url: str) -> None:
    """A handler collects signals; every 3 the run continues as new with what it has.
    Thirty signals sent in a burst all arrive, once each, in order (before the fix most
    were recorded in one run and never carried over)."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(handler_batches, 30, 3, [], id="batches")
            await asyncio.gather(*(engine.signal("batches", "add", i) for i in range(10)))
            for i in range(10, 30):
                await engine.signal("batches", "add", i)
            got = await handle.result(timeout=30)
            assert sorted(got) == list(range(30)), got
            assert got[10:] == list(range(10, 30)), got  # sent one after another: in order

    run(main())


@duro.workflow(name="can.counter")
async def counter(count: int, limit: int) -> int:
    state = {"count": count}

    def add(n: int) -> int:
        state["count"] += n
        return state["count"]

    duro.on_update("add", add)
    await duro.wait_condition(lambda: state["count"] >= min(limit, 40))
    if state["count"] >= 40:
        return state["count"]
    duro.continue_as_new(state["count"], limit + 3)
    raise AssertionError("unreachable")


def test_acknowledged_updates_survive_continue_as_new(any_db_url: str) -> None:
    """Updates sent concurrently all succeed, and every one of them counts: the run
    continues as new every 3 and the final count is the number of updates. Before the
    fix a caller could be told 'done' while its effect was dropped at continue-as-new."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(counter, 0, 3, id="counter")
            results = await asyncio.gather(*(
                handle.update("add", 1, timeout=30) for _ in range(40)))
            assert sorted(results) == list(range(1, 41)), results
            assert await handle.result(timeout=30) == 40

    run(main())


@duro.workflow(name="can.slow_update")
async def slow_update(n: int) -> int:
    gate = {"open": False}

    async def long(x: int) -> int:
        gate["open"] = True
        await asyncio.sleep(3600)  # a durable timer: the handler is still running
        return x

    duro.on_update("long", long)
    await duro.wait_condition(lambda: gate["open"])
    if n == 0:
        duro.continue_as_new(n + 1)
    return n


def test_an_update_whose_handler_is_still_running_at_continue_as_new_fails(
        any_db_url: str) -> None:
    """An update handler still running when the run continues as new cannot report
    'done': its caller gets a clear failure instead of a silent loss."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(slow_update, 0, id="slow")
            with pytest.raises(duro.UpdateFailedError, match="still running"):
                await handle.update("long", 5, timeout=20)

    run(main())


@duro.workflow(name="can.cancel_after")
async def cancel_after(n: int) -> int:
    await duro.wait_for_signal("go")
    if n < 2:
        duro.continue_as_new(n + 1)
    await asyncio.sleep(3600)
    return n


def test_messages_waiting_in_the_inbox_move_to_the_next_run(any_db_url: str) -> None:
    """Messages stored for a run but not yet read when it continues as new (including a
    cancel request) reach its successor."""

    async def main() -> Any:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(cancel_after, 0, id="moves")
            for _ in range(3):
                await engine.signal("moves", "go")
            await engine.cancel("moves")
            with pytest.raises(duro.WorkflowCancelledError):
                await handle.result(timeout=20)

    run(main())


# -- the same after a crash: the worker that takes the run over replays its history ----


@duro.step(name="can.note")
async def can_note(n: int) -> int:
    return n


@duro.workflow(name="can.after_a_step")
async def after_a_step(got: list[str]) -> list[str]:
    batch: list[str] = []
    duro.on_signal("s", lambda v: batch.append(v))
    await duro.wait_condition(lambda: len(batch) >= 1)
    await can_note(len(batch))
    got = [*got, *batch]
    if "stop" in got:
        return got
    duro.continue_as_new(got)
    raise AssertionError("unreachable")


@duro.workflow(name="can.updates_replayed")
async def updates_replayed() -> list[int]:
    applied: list[int] = []
    duro.on_update("add", lambda v: applied.append(v) or len(applied))
    await duro.wait_condition(lambda: len(applied) >= 3)
    return applied


async def _dead_worker_history(engine: duro.Engine, workflow: str, args: list[Any],
                               events: list[NewEvent], updates: tuple[int, ...] = ()) -> str:
    """A run whose worker recorded ``events`` and died before writing anything more.

    ``updates``: requested first (update ids ``u<i>``, argument i); the events then take
    them from the inbox, as a worker's append does."""
    store = engine.store
    now = engine.clock.now()
    await store.register_worker("dead", "elsewhere", 1, real_now=0.0, lease=1.0)
    record, _ = await store.create_run(
        run_id=f"{workflow}-run", workflow_id=workflow, workflow_name=workflow,
        input=orjson.dumps({"args": args, "kwargs": {}}), now=now,
        owner="dead", on_conflict="fail", on_reuse="allow")
    for i in updates:
        await store.request_update(workflow, Message.update_request(
            "add", f"u{i}", orjson.dumps([i])), now=now)
    inbox = await store.read_inbox(record.run_id)
    await store.append(record.run_id, 1, 1, events, now=now,
                       consume_inbox_upto=inbox[-1].id if inbox else None)
    return record.run_id


def test_a_signal_recorded_after_the_decision_is_carried_after_a_crash(
        any_db_url: str) -> None:
    """The dead worker recorded a signal after the step the run continued as new after;
    the worker that replays it must still carry the signal over (it stopped replaying at
    the main coroutine's end, and lost it)."""

    async def main() -> None:
        async with duro.Engine(any_db_url, worker=False) as client:
            now = client.clock.now()
            await _dead_worker_history(client, "can.after_a_step", [[]], [
                NewEvent(kind="signal_received", ts=now, name="s", data=b'"a"'),
                NewEvent(kind="step_completed", ts=now, op=1, name="can.note", data=b"1"),
                NewEvent(kind="signal_received", ts=now, name="s", data=b'"stop"'),
            ])
        async with duro.Engine(any_db_url) as engine:
            handle = engine.get_handle("can.after_a_step")
            assert await handle.result(timeout=20) == ["a", "stop"]

    run(main())


def test_update_outcomes_the_history_lacks_are_recorded_on_replay(any_db_url: str) -> None:
    """Three updates accepted, their outcomes not written before the worker died: the
    replaying worker records them (it skipped every outcome produced while replaying,
    and their callers waited until the run ended, then were told 'not handled')."""
    async def main() -> None:
        async with duro.Engine(any_db_url, worker=False) as client:
            now = client.clock.now()
            await _dead_worker_history(client, "can.updates_replayed", [], [
                NewEvent(kind="update_accepted", ts=now, name="add", data=orjson.dumps([i]),
                         meta=orjson.dumps({"update_id": f"u{i}"})) for i in (1, 2, 3)],
                updates=(1, 2, 3))
        async with duro.Engine(any_db_url) as engine:
            handle = engine.get_handle("can.updates_replayed")
            assert await handle.result(timeout=20) == [1, 2, 3]
            for i in (1, 2, 3):
                outcome = await engine.store.get_update(
                    "can.updates_replayed-run", f"u{i}")
                assert outcome is not None and outcome.status == "completed", (i, outcome)

    run(main())


def test_an_update_id_sent_again_after_continue_as_new_is_not_applied_twice(
        any_db_url: str) -> None:
    """The same update id sent again (a client retrying) after the run that handled it
    continued as new returns the first outcome instead of applying the update again."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(counter, 0, 3, id="retrying")
            first = [await handle.update("add", 1, id=f"u{i}", timeout=20) for i in range(3)]
            assert first == [1, 2, 3]  # the run continues as new after the third
            again = await handle.update("add", 1, id="u0", timeout=20)
            assert again == 1
            more = [await handle.update("add", 1, id=f"v{i}", timeout=20) for i in range(37)]
            assert more == list(range(4, 41))
            assert await handle.result(timeout=20) == 40

    run(main())
