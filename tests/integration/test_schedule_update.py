"""``client.schedules.update``: a schedule changed in place (arguments, policies,
timing), on both stores; what it keeps (counters, paused state, the pending tick unless
the timing changed) and what it refuses (typed errors, nothing changed)."""

from __future__ import annotations

import datetime as dt

import pytest

import duro
from duro.schedules import ScheduleNotFoundError, tick_workflow_id
from duro.testing import ManualClock
from tests.conftest import run
from tests.integration.test_schedules import all_done, node, sched_echo, ts


@pytest.fixture
def db_url(any_db_url: str) -> str:
    return any_db_url


def test_update_changes_arguments_and_policies_and_keeps_the_pending_tick(
        db_url: str) -> None:
    clock = ManualClock(ts(2024, 1, 1, 0, 0, 1))

    async def main() -> None:
        async with node(db_url, clock) as (engine, sched):
            made = await engine.schedules.create("up", sched_echo, args=[1], every=60,
                                                 overlap="allow_all")
            clock.advance(60)
            await sched.run_due(clock.now())
            await all_done(engine, "up", 1)
            before = await engine.schedules.get("up")
            info = await engine.schedules.update("up", args=[2], overlap="buffer_one",
                                                 catch_up=dt.timedelta(minutes=5))
            assert (info.args, info.overlap, info.catch_up.total_seconds()) == \
                ([2], "buffer_one", 300.0)
            assert info.every == made.every and info.fired == 1 == before.fired
            assert info.next_fire_at == before.next_fire_at  # same timing: same tick
            assert info.created_at == made.created_at and info.updated_at > made.updated_at
            clock.advance(60)
            await sched.run_due(clock.now())
            await all_done(engine, "up", 2)
            tick = tick_workflow_id("up", ts(2024, 1, 1, 0, 2))
            assert await engine.get_handle(tick).result(timeout=10) == 2
            # An update that changes nothing writes nothing.
            current = await engine.schedules.get("up")
            clock.advance(1)
            assert await engine.schedules.update("up", args=[2]) == current

    run(main())


def test_update_of_the_timing_fires_from_the_next_tick_of_the_new_spec(db_url: str) -> None:
    clock = ManualClock(ts(2024, 1, 1, 0, 0, 1))

    async def main() -> None:
        async with node(db_url, clock) as (engine, _):
            await engine.schedules.create("t", sched_echo, args=[1], every=3600, paused=True,
                                          note="why")
            clock.advance(10)
            info = await engine.schedules.update("t", cron="30 9 * * *",
                                                 timezone="Europe/Berlin")
            assert (info.cron, info.every, info.timezone) == ("30 9 * * *", None,
                                                             "Europe/Berlin")
            assert info.paused and info.note == "why"  # an update is no resume
            assert info.next_fire_at == dt.datetime(2024, 1, 1, 8, 30, tzinfo=dt.UTC)
            back = await engine.schedules.update("t", every=dt.timedelta(minutes=15))
            assert (back.cron, back.every) == (None, dt.timedelta(minutes=15))
            assert back.next_fire_at == dt.datetime(2024, 1, 1, 0, 15, tzinfo=dt.UTC)

    run(main())


def test_update_refuses_bad_changes_and_changes_nothing(db_url: str) -> None:
    clock = ManualClock(ts(2024, 1, 1))

    async def main() -> None:
        async with node(db_url, clock) as (engine, _):
            await engine.schedules.create("bad", sched_echo, args=[1], every=60)
            before = await engine.schedules.get("bad")
            update = engine.schedules.update
            with pytest.raises(duro.InvalidArgumentError, match="not both"):
                await update("bad", cron="* * * * *", every=60)
            with pytest.raises(duro.WorkflowArgumentsError):
                await update("bad", args=["not a number"])
            with pytest.raises(ValueError, match="cron"):
                await update("bad", cron="61 * * * *")
            with pytest.raises(duro.InvalidArgumentError, match="overlap"):
                await update("bad", overlap="sometimes")  # type: ignore[arg-type]
            with pytest.raises(duro.InvalidArgumentError, match="catch_up"):
                await update("bad", catch_up=-1)
            with pytest.raises(duro.InvalidArgumentError, match="queue"):
                await update("bad", queue="")
            with pytest.raises(ValueError):
                await update("bad", timezone="Mars/Olympus")
            with pytest.raises(ScheduleNotFoundError):
                await update("nope", args=[1])
            with pytest.raises(ScheduleNotFoundError):  # another namespace's is not there
                await engine.with_namespace("other").schedules.update("bad", args=[3])
            assert await engine.schedules.get("bad") == before

    run(main())
