"""A schedule's upcoming ticks, one computation (``ScheduleInfo.upcoming_ticks``) for
``GET /v1/schedules/{id}/ticks`` and ``duro schedule show --ticks``; and a schedule
whose time zone this machine does not know (stored by a machine with a newer tz
database): still listed and shown over HTTP and by the CLI, its times in UTC, no 500.
A real ``duro serve`` and the real CLI, on both stores."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.acceptance.serving import APPS, DURO_SRC, problem, serve_http
from tests.faults import _pg, _sqlite_path

LOST_ZONE = "Mars/Olympus_Mons"


def _set_zone(url: str, schedule_id: str, zone: str) -> None:
    """Behind the API's back (it refuses an unknown zone): the row as a machine whose tz
    database knows ``zone`` would have stored it."""
    sql = "UPDATE schedules SET timezone = {p} WHERE schedule_id = {p}"
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(_sqlite_path(url), timeout=30)) as conn:
            conn.execute(sql.format(p="?"), (zone, schedule_id))
            conn.commit()
        return
    with _pg(url) as conn:
        conn.execute(sql.format(p="%s"), (zone, schedule_id))


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DURO_DB", "PYTHONPATH")}
    environ["PYTHONPATH"] = os.pathsep.join([str(APPS), str(DURO_SRC)])
    return subprocess.run([sys.executable, "-m", "duro", "--db", url, *args], env=environ,
                          cwd=APPS, capture_output=True, text=True, timeout=60)


@pytest.fixture
def served(any_db_url: str) -> Iterator[tuple[str, httpx.Client]]:
    with serve_http(any_db_url, "order_app", worker=False) as (http, _):
        yield any_db_url, http


def test_ticks_shared_by_route_and_cli_and_an_unknown_zone_is_no_500(
        served: tuple[str, httpx.Client]) -> None:
    url, http = served
    for schedule_id in ("nightly", "lost"):
        created = http.post("/v1/schedules", json={
            "id": schedule_id, "workflow": "order_app.order", "args": ["apple", 1],
            "cron": "0 3 * * *", "timezone": "Europe/Berlin"})
        assert created.status_code == 201, created.text
    ticks = http.get("/v1/schedules/nightly/ticks", params={"count": 3}).json()["ticks"]
    times = [dt.datetime.fromisoformat(t) for t in ticks]
    assert len(times) == 3 and all(b - a == dt.timedelta(days=1)
                                   for a, b in itertools.pairwise(times))
    assert all(t.astimezone(dt.UTC).hour in (1, 2) for t in times)  # 03:00 in Berlin
    shown = _cli(url, "schedule", "show", "nightly", "--ticks", "3", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["ticks"] == ticks
    text = _cli(url, "schedule", "show", "nightly", "--ticks", "3", "--utc")
    upcoming = [line for line in text.stdout.splitlines() if line.startswith("upcoming")]
    assert upcoming and upcoming[0].count("UTC") == 3, text.stdout
    refused = _cli(url, "schedule", "show", "nightly", "--ticks", "51")
    assert refused.returncode != 0 and "1 to 50" in refused.stderr

    _set_zone(url, "lost", LOST_ZONE)
    listed = http.get("/v1/schedules")
    assert listed.status_code == 200, listed.text
    lost = next(s for s in listed.json()["schedules"] if s["schedule_id"] == "lost")
    assert lost["timezone"] == LOST_ZONE
    assert lost["next_fire_local"] == lost["next_fire_at"]  # in UTC, as the CLI shows it
    assert http.get("/v1/schedules/lost").status_code == 200
    ticks = http.get("/v1/schedules/lost/ticks", params={"count": 3})
    assert ticks.status_code == 200, ticks.text
    assert ticks.json()["ticks"] == [lost["next_fire_at"]]  # only the pending one
    for args in (("schedule", "ls"), ("schedule", "show", "lost", "--ticks", "2")):
        out = _cli(url, *args)
        assert out.returncode == 0 and "UTC" in out.stdout, out.stderr
    problem(http.get("/v1/schedules/lost/ticks", params={"count": 0}), 400,
            "invalid_argument")
