"""Schedules on real SQLite files with controlled time: cron and interval ticks (time
zones, DST), exactly one run per tick across workers and restarts, catch-up, overlap
policies, pause/resume, trigger, backfill, and schedules declared in code.

The scheduler is driven directly (``Scheduler.run_due``), as a worker's main loop does;
assertions are on the database, so they hold whether or not the engines' own workers
also run a scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import duro
from duro.client._schedules import ScheduleInfo
from duro.schedules import (
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
    ScheduleSpec,
    schedule,
    tick_workflow_id,
)
from duro.schedules._declare import forget_declaration
from duro.store import RunStatus
from duro.testing import ManualClock
from duro.worker._scheduler import Scheduler
from tests.conftest import run, wait_until

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


@duro.workflow
async def sched_echo(n: int) -> int:
    return n


@duro.workflow
async def sched_hold(tag: str) -> str:
    await duro.wait_for_signal("finish")
    return tag


WORKFLOWS = [sched_echo, sched_hold]



@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Store-agnostic tests: each runs on SQLite and on PostgreSQL."""
    return any_db_url


def ts(*parts: int, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime(*parts, tzinfo=tz).timestamp()


def local(t: float, tz: dt.tzinfo = BERLIN) -> str:
    return dt.datetime.fromtimestamp(t, tz).isoformat()


@contextlib.asynccontextmanager
async def node(url: str, clock: ManualClock) -> AsyncIterator[tuple[duro.Engine, Scheduler]]:
    """An engine (embedded worker) and a scheduler on it, as a worker process has."""
    async with duro.Engine(url, clock=clock, workflows=WORKFLOWS, poll_interval=0.05) as engine:
        assert engine.worker is not None
        scheduler = Scheduler(engine.store, clock=clock, poll_interval=0.0,
                              on_started=engine.worker.wake,
                              workflows=[w.name for w in WORKFLOWS])
        await scheduler.start()
        yield engine, scheduler


async def schedule_runs(engine: duro.Engine, schedule_id: str) -> list[duro.RunInfo]:
    return [r for r in await engine.list(limit=10_000)
            if r.workflow_id.startswith(f"{schedule_id}@")]


async def all_done(engine: duro.Engine, schedule_id: str, count: int) -> None:
    async def check() -> bool:
        runs = await schedule_runs(engine, schedule_id)
        return len(runs) == count and all(r.status == RunStatus.COMPLETED for r in runs)

    await wait_until(check, timeout=20)


# -- when ticks happen ---------------------------------------------------------------


def test_cron_ticks_follow_the_wall_clock_of_the_time_zone() -> None:
    weekdays_9 = ScheduleSpec(cron="0 9 * * 1-5", timezone="America/New_York")
    friday_noon = ts(2024, 1, 5, 12, tz=ZoneInfo("America/New_York"))
    monday_9 = weekdays_9.next_after(friday_noon)
    assert monday_9 == ts(2024, 1, 8, 14)  # 9:00 EST is 14:00 UTC
    summer = weekdays_9.next_after(ts(2024, 7, 5, 18))
    assert summer == ts(2024, 7, 8, 13)  # 9:00 EDT is 13:00 UTC
    assert ScheduleSpec(cron="@daily", timezone="Asia/Tokyo").next_after(
        ts(2024, 1, 1, 14)) == ts(2024, 1, 1, 15)  # 23:00 JST: the next midnight JST


def test_dst_a_missing_wall_time_is_skipped_and_a_repeated_one_fires_once() -> None:
    nightly = ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin")
    # Spring forward (2024-03-31 02:00 -> 03:00): 02:30 does not exist that night.
    t = ts(2024, 3, 30, 12)
    spring = []
    for _ in range(3):
        nxt = nightly.next_after(t)
        assert nxt is not None
        spring.append(local(nxt))
        t = nxt
    assert spring == ["2024-04-01T02:30:00+02:00", "2024-04-02T02:30:00+02:00",
                      "2024-04-03T02:30:00+02:00"]
    # Fall back (2024-10-27 03:00 -> 02:00): 02:30 happens twice, fires at the first.
    ticks = nightly.ticks(ts(2024, 10, 26, 12), ts(2024, 10, 28, 12), limit=10)
    assert [local(x) for x in ticks] == ["2024-10-27T02:30:00+02:00",
                                         "2024-10-28T02:30:00+01:00"]
    half_hourly = ScheduleSpec(cron="*/30 * * * *", timezone="Europe/Berlin")
    around_fold = half_hourly.ticks(ts(2024, 10, 27, 1, 15, tz=BERLIN),
                                    ts(2024, 10, 27, 3, 45, tz=BERLIN), limit=20)
    assert [local(x)[11:] for x in around_fold] == [
        "01:30:00+02:00", "02:00:00+02:00", "02:30:00+02:00",  # the repeated hour once
        "03:00:00+01:00", "03:30:00+01:00"]
    around_gap = half_hourly.ticks(ts(2024, 3, 31, 1, 15, tz=BERLIN),
                                   ts(2024, 3, 31, 3, 45, tz=BERLIN), limit=20)
    assert [local(x)[11:] for x in around_gap] == [
        "01:30:00+01:00", "03:00:00+02:00", "03:30:00+02:00"]  # 02:00 and 02:30 skipped


def test_interval_ticks_are_anchored_and_deterministic() -> None:
    every = ScheduleSpec(every=90, anchor=1000)
    assert every.next_after(1000) == 1090
    assert every.next_after(999.5) == 1000
    assert every.ticks(900, 1300, limit=10) == [910, 1000, 1090, 1180, 1270]
    assert every.first_at_or_after(1090) == 1090
    assert every.skip_before(1000, 1300) == (4, 1360)
    hourly = ScheduleSpec(every=3600)  # anchored at the epoch: on the hour
    assert hourly.next_after(ts(2024, 5, 1, 10, 17)) == ts(2024, 5, 1, 11)
    assert tick_workflow_id("sync", ts(2024, 5, 1, 11)) == "sync@2024-05-01T11:00:00Z"
    assert tick_workflow_id("s", 0.25) == "s@1970-01-01T00:00:00.250000Z"
    with pytest.raises(ValueError, match="more than 3 ticks"):
        every.ticks(0, 10_000, limit=3)


@pytest.mark.parametrize(("options", "message"), [
    ({}, "exactly one of cron"),
    ({"cron": "* * * * *", "every": 5}, "exactly one of cron"),
    ({"cron": "61 * * * *"}, "malformed cron"),
    ({"cron": "* * * * * *"}, "has 6 fields"),
    ({"cron": "@fortnightly"}, "unknown cron alias"),
    ({"every": 0}, "positive number"),
    ({"every": 5e-324}, "positive number"),  # its tick arithmetic would overflow
    ({"every": 1e308}, "positive number"),
    ({"every": 60, "anchor": 1e308}, "anchor must be a time within"),
    ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
])
def test_bad_timing_is_a_clear_value_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScheduleSpec(**options)


# -- exactly once ----------------------------------------------------------------------


def test_one_run_per_tick_across_two_workers_and_restarts_none_missed_in_window(
        db_url: str) -> None:
    """Two workers race for every tick of a cron schedule; one restarts, then both are
    down for 31 minutes; the ticks within the 12-minute catch-up window still start
    (once each), the older ones are skipped and counted."""
    url = db_url
    spec = ScheduleSpec(cron="*/5 * * * *", timezone="Europe/Berlin")
    start = ts(2024, 6, 3, 10, 0, 30)
    clock = ManualClock(start)
    window = 12 * 60
    down: list[float] = []

    async def race(*schedulers: Scheduler) -> None:
        now = clock.now()
        await asyncio.gather(*(s.run_due(now) for s in schedulers for _ in range(2)))

    async def main() -> tuple[list[str], ScheduleInfo]:
        async with node(url, clock) as (a, sa):
            await a.schedules.create("cron", sched_echo, args=[7], cron=spec.cron,
                                     timezone=spec.timezone, catch_up=window,
                                     overlap="allow_all")
            async with node(url, clock) as (_, sb):
                for _ in range(8):  # 20 minutes, both racing
                    clock.advance(150)
                    await race(sa, sb)
            for _ in range(4):  # B restarts: A alone for 10 minutes
                clock.advance(150)
                await race(sa)
            async with node(url, clock) as (_, sb):
                for _ in range(4):
                    clock.advance(150)
                    await race(sa, sb)
            await all_done(a, "cron", len(spec.ticks(start, clock.now(), limit=100)))
        down.append(clock.now())
        clock.advance(31 * 60)  # everything down for 31 minutes
        down.append(clock.now())
        async with node(url, clock) as (a, sa), node(url, clock) as (_, sb):
            await race(sa, sb)  # catch up
            for _ in range(4):
                clock.advance(150)
                await race(sa, sb)
            info = await a.schedules.get("cron")
            await all_done(a, "cron", info.fired)
            ids = [r.workflow_id for r in await schedule_runs(a, "cron")]
            assert {await a.get_handle(i).result(timeout=5) for i in ids} == {7}
        return ids, info

    ids, info = run(main(), timeout=120)
    went_down, came_back = down
    skipped = spec.ticks(went_down, came_back - window, limit=100)
    expected = [tick_workflow_id("cron", t) for t in spec.ticks(start, clock.now(), limit=100)
                if t not in skipped]
    assert len(skipped) == 3 and info.missed == 3  # 10:45, 10:50, 10:55 (UTC)
    assert len(expected) == 13  # 10:05 to 11:20, every 5 minutes, less those 3
    assert len(ids) == len(set(ids)), "a tick started two runs"
    assert sorted(ids) == sorted(expected)
    assert info.fired == len(expected)
    assert info.next_fire_at is not None and info.next_fire_at.timestamp() > clock.now()


def test_firing_is_a_compare_and_set(db_url: str) -> None:
    """Two concurrent fire attempts seen from the same state: one wins, one is told no."""
    clock = ManualClock(ts(2024, 1, 1, 0, 0, 10))

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock, worker=False
                               ) as a, duro.Engine(db_url,
                                                   clock=clock, worker=False) as b:
            await a.schedules.create("cas", sched_echo, args=[1], every=60,
                                     overlap="allow_all")
            record = await a.store.get_schedule("cas")
            nxt = record.next_fire_at
            assert nxt == ts(2024, 1, 1, 0, 1)
            clock.advance(60)
            results = await asyncio.gather(*(
                store.fire_schedule("cas", expected_next=nxt, next_fire_at=nxt + 60,
                                    ticks=[nxt], missed=0, now=clock.now())
                for store in (a.store, b.store, a.store, b.store)))
            winners = [r for r in results if r is not None]
            assert len(winners) == 1 and len(winners[0].started) == 1
            runs = await schedule_runs(a, "cas")
            assert [r.workflow_id for r in runs] == [tick_workflow_id("cas", nxt)]
            # The workflow id is the backstop: a stale fire with a fresh CAS value
            # (e.g. a bug) still cannot start the tick twice.
            again = await a.store.fire_schedule(
                "cas", expected_next=nxt + 60, next_fire_at=nxt + 120, ticks=[nxt],
                missed=0, now=clock.now())
            assert again is not None and again.started == ()
            assert len(await schedule_runs(a, "cas")) == 1

    run(main())


def test_catch_up_window_on_an_interval_schedule(db_url: str) -> None:
    clock = ManualClock(ts(2024, 1, 1, 0, 0, 1))

    async def main() -> None:
        async with node(db_url, clock) as (engine, _):
            await engine.schedules.create("iv", sched_echo, args=[2], every=60,
                                          catch_up=150, overlap="allow_all")
        clock.advance(10 * 60)  # down: ten ticks due; 150 s window: the last 3 fire
        async with node(db_url, clock) as (engine, sched):
            assert await sched.run_due(clock.now()) == ts(2024, 1, 1, 0, 11)
            await all_done(engine, "iv", 3)
            ids = sorted(r.workflow_id for r in await schedule_runs(engine, "iv"))
            assert ids == [f"iv@2024-01-01T00:{m:02d}:00Z" for m in (8, 9, 10)]
            info = await engine.schedules.get("iv")
            assert info.missed == 7 and info.fired == 3
            # Nothing is fired twice on the next look.
            await sched.run_due(clock.now())
            assert len(await schedule_runs(engine, "iv")) == 3

    run(main())


def test_a_clock_jump_while_workers_run_fires_every_tick_it_passes(db_url: str) -> None:
    """ManualClock.advance is time passing: a running worker fires every tick it jumps
    over (each once, in order), none counted as missed, whatever the catch-up window;
    more ticks than one batch take several looks."""
    clock = ManualClock(ts(2024, 1, 1, 0, 0, 1))

    async def main() -> None:
        async with node(db_url, clock) as (engine, sched):
            await engine.schedules.create("jump", sched_echo, args=[3], every=60,
                                          catch_up=60, overlap="allow_all")
            sched.batch = 4
            await sched.run_due(clock.now())  # it is running: it looks
            clock.advance(10 * 60)
            while (await engine.schedules.get("jump")).fired < 10:
                await sched.run_due(clock.now())
            await all_done(engine, "jump", 10)
            ids = sorted(r.workflow_id for r in await schedule_runs(engine, "jump"))
            assert ids == [f"jump@2024-01-01T00:{m:02d}:00Z" for m in range(1, 11)]
            info = await engine.schedules.get("jump")
            assert info.missed == 0 and info.fired == 10

    run(main())


def test_dst_through_the_scheduler(db_url: str) -> None:
    """Hour by hour through the spring-forward night: the non-existent 02:30 starts no
    run; half-hourly through the fall-back night: the repeated half hours start once."""
    clock = ManualClock(ts(2024, 3, 30, 12))

    async def main() -> tuple[list[str], list[str]]:
        async with node(db_url, clock) as (engine, sched):
            await engine.schedules.create("nightly", sched_echo, args=[1], catch_up=3600,
                                          cron="30 2 * * *", timezone="Europe/Berlin",
                                          overlap="allow_all")
            for _ in range(62):
                clock.advance(3600)
                await sched.run_due(clock.now())
            await all_done(engine, "nightly", 2)
            spring = sorted(r.workflow_id for r in await schedule_runs(engine, "nightly"))
            await engine.schedules.delete("nightly")
            clock.advance(ts(2024, 10, 26, 23, 5) - clock.now())
            await engine.schedules.create("half", sched_echo, args=[1], cron="*/30 * * * *",
                                          timezone="Europe/Berlin", catch_up=3600,
                                          overlap="allow_all")
            for _ in range(24):  # 4 hours in 10-minute steps
                clock.advance(600)
                await sched.run_due(clock.now())
            await all_done(engine, "half", 6)
            fall = sorted(r.workflow_id for r in await schedule_runs(engine, "half"))
            return spring, fall

    spring, fall = run(main(), timeout=90)
    # 2024-04-01 02:30 CEST = 00:30Z; 2024-03-31 02:30 never happened in Berlin.
    assert spring == ["nightly@2024-04-01T00:30:00Z", "nightly@2024-04-02T00:30:00Z"]
    # 01:30, 02:00, 02:30 CEST (23:30Z, 00:00Z, 00:30Z); the second 02:00/02:30 (01:00Z,
    # 01:30Z) are skipped; then 03:00, 03:30 CET (02:00Z, 02:30Z) and 04:00 CET (03:00Z).
    assert fall == ["half@2024-10-26T23:30:00Z", "half@2024-10-27T00:00:00Z",
                    "half@2024-10-27T00:30:00Z", "half@2024-10-27T02:00:00Z",
                    "half@2024-10-27T02:30:00Z", "half@2024-10-27T03:00:00Z"]


# -- overlap ---------------------------------------------------------------------------


async def _live_ids(engine: duro.Engine, schedule_id: str) -> list[str]:
    return sorted(r.workflow_id for r in await schedule_runs(engine, schedule_id)
                  if not r.status.is_terminal)


@pytest.mark.parametrize("policy", ["skip", "buffer_one", "allow_all"])
def test_overlap_policies(db_url: str, policy: str) -> None:
    clock = ManualClock(ts(2024, 1, 1, 0, 0, 1))
    tick = [ts(2024, 1, 1, 0, m) for m in range(6)]
    ids = [tick_workflow_id("ov", t) for t in tick]

    async def main() -> None:
        async with node(db_url, clock) as (engine, sched):
            await engine.schedules.create("ov", sched_hold, args=["x"], every=60,
                                          overlap=policy)  # type: ignore[arg-type]
            for _ in range(3):  # ticks 1, 2, 3 while the first run waits for a signal
                clock.advance(60)
                await sched.run_due(clock.now())
            info = await engine.schedules.get("ov")
            live = await _live_ids(engine, "ov")
            if policy == "allow_all":
                assert live == ids[1:4] and info.overlap_skipped == 0
            elif policy == "skip":
                assert live == ids[1:2] and info.overlap_skipped == 2
                assert info.buffered_at is None
            else:
                assert live == ids[1:2] and info.overlap_skipped == 1
                assert info.buffered_at is not None
                assert info.buffered_at.timestamp() == tick[2]
            await engine.get_handle(ids[1]).signal("finish")
            await engine.get_handle(ids[1]).result(timeout=10)
            await sched.run_due(clock.now())  # the previous run ended
            live = await _live_ids(engine, "ov")
            if policy == "buffer_one":
                assert live == [ids[2]]  # the buffered tick starts now, under its own id
                assert (await engine.schedules.get("ov")).buffered_at is None
            elif policy == "skip":
                assert live == []
                clock.advance(60)  # the next tick starts again
                await sched.run_due(clock.now())
                assert await _live_ids(engine, "ov") == [ids[4]]
            else:
                assert live == ids[2:4]

    run(main())


# -- operations ------------------------------------------------------------------------


def test_pause_resume_trigger_delete(db_url: str) -> None:
    clock = ManualClock(ts(2024, 1, 1, 0, 0, 1))

    async def main() -> None:
        async with node(db_url, clock) as (engine, sched):
            await engine.schedules.create("p", sched_echo, args=[3], every=60)
            paused = await engine.schedules.pause("p", note="maintenance")
            assert paused.paused and paused.note == "maintenance"
            clock.advance(300)
            await sched.run_due(clock.now())
            assert await schedule_runs(engine, "p") == []
            # Triggering works while paused, and starts at once.
            handle = await engine.schedules.trigger("p")
            assert handle.workflow_id.startswith("p@manual-")
            assert await handle.result(timeout=10) == 3
            assert (await engine.schedules.get("p")).last_workflow_id == handle.workflow_id
            resumed = await engine.schedules.resume("p")
            assert not resumed.paused and resumed.note is None
            # The pause's ticks are not caught up: the next is the first after now.
            assert resumed.next_fire_at == dt.datetime(2024, 1, 1, 0, 6, tzinfo=UTC)
            again = await engine.schedules.resume("p")  # not paused: nothing changes
            assert again.next_fire_at == resumed.next_fire_at
            clock.advance(60)
            await sched.run_due(clock.now())
            await all_done(engine, "p", 2)  # the trigger's run and 00:06
            assert {r.workflow_id for r in await schedule_runs(engine, "p")} == {
                handle.workflow_id, "p@2024-01-01T00:06:00Z"}
            assert [s.schedule_id for s in await engine.schedules.list()] == ["p"]
            await engine.schedules.delete("p")
            assert await engine.schedules.list() == []
            assert len(await schedule_runs(engine, "p")) == 2  # runs stay
            for call in (engine.schedules.get("p"), engine.schedules.pause("p"),
                         engine.schedules.resume("p"), engine.schedules.trigger("p"),
                         engine.schedules.delete("p"),
                         engine.schedules.backfill("p", 0, 60)):
                with pytest.raises(ScheduleNotFoundError, match="no schedule 'p'"):
                    await call

    run(main())


def test_backfill_starts_each_tick_once_and_is_idempotent(db_url: str) -> None:
    clock = ManualClock(ts(2024, 5, 1, 12, 0, 1))

    async def main() -> None:
        async with node(db_url, clock) as (engine, sched):
            await engine.schedules.create("bf", sched_echo, args=[4], cron="0 * * * *",
                                          timezone="Europe/Berlin", paused=True)
            start = dt.datetime(2024, 5, 1, 8, 0, tzinfo=BERLIN)
            end = dt.datetime(2024, 5, 1, 11, 0, tzinfo=BERLIN)
            handles = await engine.schedules.backfill("bf", start, end)
            assert [h.workflow_id for h in handles] == [
                f"bf@2024-05-01T0{h}:00:00Z" for h in (6, 7, 8, 9)]  # CEST = UTC+2
            assert [await h.result(timeout=10) for h in handles] == [4, 4, 4, 4]
            assert await engine.schedules.backfill("bf", start, end) == []
            wider = await engine.schedules.backfill("bf", start, end + dt.timedelta(hours=1))
            assert [h.workflow_id for h in wider] == ["bf@2024-05-01T10:00:00Z"]
            # A scheduled tick and a backfilled one are the same run.
            await engine.schedules.resume("bf")
            clock.advance(3600)
            await sched.run_due(clock.now())
            at_15 = dt.datetime(2024, 5, 1, 15, 0, tzinfo=BERLIN)
            assert await schedule_runs(engine, "bf") != []
            assert await engine.schedules.backfill("bf", at_15, at_15) == []
            await all_done(engine, "bf", 6)
            with pytest.raises(ValueError, match="before its start"):
                await engine.schedules.backfill("bf", end, start)
            with pytest.raises(ValueError, match="timezone-aware"):
                await engine.schedules.backfill("bf", dt.datetime(2024, 1, 1), end)

    run(main())


def test_create_validates_at_the_call_site(db_url: str) -> None:
    clock = ManualClock(ts(2024, 1, 1))

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock,
                               worker=False) as engine:
            create = engine.schedules.create
            with pytest.raises(ValueError, match="malformed cron"):
                await create("a", sched_echo, args=[1], cron="0 25 * * *")
            with pytest.raises(ValueError, match="overlap must be one of"):
                await create("a", sched_echo, args=[1], every=5,
                             overlap="sometimes")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="wrong arguments"):
                await create("a", sched_echo, args=[1, 2], every=5)
            with pytest.raises(ValueError, match="must not contain '@'"):
                await create("a@b", sched_echo, args=[1], every=5)
            with pytest.raises(ValueError, match="catch_up"):
                await create("a", sched_echo, args=[1], every=5, catch_up=-1)
            with pytest.raises(duro.SerializationError):
                await create("a", sched_echo, args=[object()], every=5)
            assert await engine.schedules.list() == []  # nothing stored by bad input
            first = await create("a", "some.other:workflow", every=dt.timedelta(minutes=5),
                                 anchor=dt.datetime(2024, 1, 1, 0, 2, tzinfo=UTC))
            assert first.workflow_name == "some.other:workflow"  # code not needed here
            assert first.next_fire_at == dt.datetime(2024, 1, 1, 0, 2, tzinfo=UTC)
            with pytest.raises(ScheduleAlreadyExistsError, match="exists already"):
                await create("a", sched_echo, args=[1], every=5)

    run(main())


# -- declared in code --------------------------------------------------------------------


def test_code_declared_schedules_are_upserted_without_clobbering_a_pause(db_url: str) -> None:
    url = db_url
    clock = ManualClock(ts(2024, 2, 1, 8, 0, 1))

    def declare(cron: str, args: Sequence[Any]) -> None:
        schedule(sched_echo, id="code-report", cron=cron, timezone="Europe/Berlin", args=args)

    async def main() -> None:
        declare("0 10 * * *", [1])
        schedule("not-served-here", id="elsewhere", every=60)
        async with node(url, clock) as (engine, sched):
            info = await engine.schedules.get("code-report")
            assert info.source == "code" and info.args == [1] and not info.paused
            assert info.next_fire_at == dt.datetime(2024, 2, 1, 9, tzinfo=UTC)  # 10:00 CET
            with pytest.raises(ScheduleNotFoundError):
                await engine.schedules.get("elsewhere")  # its workflow is not served
            await engine.schedules.pause("code-report", note="operator says no")
            clock.advance(3600)
            await sched.run_due(clock.now())
            assert await schedule_runs(engine, "code-report") == []
        # The next deploy changes the time and the arguments.
        declare("30 11 * * *", [2])
        async with node(url, clock) as (engine, _):
            info = await engine.schedules.get("code-report")
            assert info.paused and info.note == "operator says no"  # the pause holds
            assert info.cron == "30 11 * * *" and info.args == [2]
            assert info.next_fire_at == dt.datetime(2024, 2, 1, 10, 30, tzinfo=UTC)
            unchanged_at = info.updated_at
        async with node(url, clock) as (engine, _):  # same code: nothing written
            assert (await engine.schedules.get("code-report")).updated_at == unchanged_at

    try:
        run(main())
    finally:
        forget_declaration("code-report")
        forget_declaration("elsewhere")
