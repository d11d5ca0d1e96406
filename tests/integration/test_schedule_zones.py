"""A schedule's times in its own time zone: the read model (``ScheduleInfo``) and its
JSON form offer the next tick on the zone's wall clock, on both stores."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import duro
from duro.client._schedules import ScheduleInfo
from duro.testing import ManualClock
from tests.conftest import run


@duro.workflow
async def zoned_echo(n: int) -> int:
    return n


def test_next_tick_is_offered_in_the_schedules_zone(any_db_url: str) -> None:
    # 2026-12-06 18:00 UTC: a Berlin "0 2 * * *" next fires at 02:00 CET, 01:00 UTC.
    clock = ManualClock(dt.datetime(2026, 12, 6, 18, tzinfo=dt.UTC).timestamp())

    async def main() -> None:
        async with duro.Engine(any_db_url, clock=clock, worker=False) as engine:
            info = await engine.schedules.create(
                "nightly", zoned_echo, args=[1], cron="0 2 * * *", timezone="Europe/Berlin")
            assert info.next_fire_at == dt.datetime(2026, 12, 7, 1, tzinfo=dt.UTC)
            local = info.next_fire_local
            assert local is not None and local.tzinfo == ZoneInfo("Europe/Berlin")
            assert (local.hour, local.tzname()) == (2, "CET")
            listed = (await engine.schedules.list())[0]
            assert listed.next_fire_local == local
            data = listed.to_json()
            assert data["next_fire_local"] == "2026-12-07T02:00:00+01:00"
            assert data["next_fire_at"] == "2026-12-07T01:00:00+00:00"
            assert ScheduleInfo.from_json(data).next_fire_local == local
            paused = await engine.schedules.create(
                "utc", zoned_echo, args=[2], every=3600, paused=True)
            assert paused.in_zone(paused.created_at).tzinfo == ZoneInfo("UTC")

    run(main())
