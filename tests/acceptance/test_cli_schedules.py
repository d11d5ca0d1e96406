"""Acceptance tests of ``duro schedule``: the real CLI in subprocesses on a real SQLite
file, and schedulers in several processes racing for the same ticks.

Every wait is bounded: subprocess calls by ``CALL_TIMEOUT``, background processes by
``communicate``/``wait`` timeouts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import duro
from duro.schedules import ScheduleSpec, tick_workflow_id

CALL_TIMEOUT = 30.0

APP = '''
import duro
from duro.schedules import schedule

@duro.workflow
async def report(kind: str, n: int = 1) -> str:
    return f"{kind}:{n}"

schedule(report, id="every-second", every=1, args=["tick"], catch_up=60,
         overlap="allow_all")
'''

DRIVER = '''
"""A worker process that drives a scheduler in real time (as a worker's loop does)."""
import asyncio, sys
import duro
from duro.worker._scheduler import Scheduler
import app

async def main(url: str, seconds: float) -> None:
    async with duro.Engine(url, workflows=[app.report], poll_interval=0.02) as engine:
        assert engine.worker is not None
        scheduler = Scheduler(engine.store, clock=engine.clock, poll_interval=0.05,
                              on_started=engine.worker.wake)
        await scheduler.start()
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            due = await scheduler.run_due(engine.clock.now())
            wait = 0.05 if due is None else min(0.05, max(0.0, due - engine.clock.now()))
            await asyncio.sleep(wait)
        # The engine's own worker fires ticks too (its scheduler races the one above).
        print("started", scheduler.runs_started + engine.worker.scheduler.runs_started,
              flush=True)

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
'''


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    env.update(PYTHONUTF8="1", NO_COLOR="1")
    src = str(Path(duro.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def cli(cwd: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "duro", "--db", db, *args],
                          capture_output=True, text=True, cwd=cwd, env=_env(),
                          timeout=CALL_TIMEOUT)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def js(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(proc))


def runs(db_file: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db_file) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT workflow_id, status FROM runs ORDER BY workflow_id")]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    return tmp_path


def test_schedule_commands(app_dir: Path) -> None:
    db_file = app_dir / "s.db"
    db = f"sqlite:///{db_file}"
    created = js(cli(app_dir, db, "schedule", "create", "nightly", "app.py:report", "daily",
                     "--cron", "0 2 * * *", "--tz", "Europe/Berlin", "--json"))
    assert created["cron"] == "0 2 * * *" and created["args"] == ["daily"]
    assert created["timezone"] == "Europe/Berlin" and created["overlap"] == "skip"
    out = ok(cli(app_dir, db, "schedule", "create", "often", "report", "--every", "5m",
                 "--json-args", '{"kind": "k", "n": 3}', "--overlap", "buffer_one",
                 "--catch-up", "1h", "--paused", "--note", "not yet"))
    assert "created schedule 'often'" in out and "every 5m" in out and "paused" in out

    listed = js(cli(app_dir, db, "schedule", "ls", "--json"))
    assert [s["schedule_id"] for s in listed] == ["nightly", "often"]
    often = listed[1]
    assert often["every"] == 300 and often["catch_up"] == 3600 and often["paused"]
    assert often["kwargs"] == {"kind": "k", "n": 3} and often["note"] == "not yet"
    table = ok(cli(app_dir, db, "schedule", "ls"))
    assert "cron '0 2 * * *' (Europe/Berlin)" in table and "paused" in table
    assert "note" not in ok(cli(app_dir, db, "schedule", "show", "nightly"))
    assert "not yet" in ok(cli(app_dir, db, "schedule", "show", "often"))

    ok(cli(app_dir, db, "schedule", "pause", "nightly", "--note", "migration"))
    assert js(cli(app_dir, db, "schedule", "show", "nightly", "--json"))["paused"]
    resumed = ok(cli(app_dir, db, "schedule", "resume", "nightly"))
    assert "resumed schedule 'nightly' (next tick" in resumed
    assert not js(cli(app_dir, db, "schedule", "show", "nightly", "--json"))["paused"]

    # Changed in place: arguments and a policy (the pending tick stays), then the timing.
    before = js(cli(app_dir, db, "schedule", "show", "nightly", "--json"))
    updated = js(cli(app_dir, db, "schedule", "update", "nightly", "weekly", "-m", "app.py",
                     "--overlap", "allow_all", "--json"))
    assert updated["args"] == ["weekly"] and updated["overlap"] == "allow_all"
    assert updated["next_fire_at"] == before["next_fire_at"] and updated["cron"] == "0 2 * * *"
    text = ok(cli(app_dir, db, "schedule", "update", "nightly", "--cron", "0 3 * * *"))
    assert "updated schedule 'nightly'" in text and "'0 3 * * *'" in text
    back = js(cli(app_dir, db, "schedule", "show", "nightly", "--json"))
    assert back["args"] == ["weekly"] and back["timezone"] == "Europe/Berlin"
    ok(cli(app_dir, db, "schedule", "update", "nightly", "daily", "--cron", "0 2 * * *",
           "--overlap", "skip"))

    triggered = js(cli(app_dir, db, "schedule", "trigger", "often", "--json"))
    assert triggered["workflow_id"].startswith("often@manual-")

    # Naive times are in the schedule's zone: 02:00 CEST is 00:00 UTC.
    filled = js(cli(app_dir, db, "schedule", "backfill", "nightly", "2024-05-01T00:00",
                    "2024-05-03T23:00", "--json"))
    assert filled == ["nightly@2024-05-01T00:00:00Z", "nightly@2024-05-02T00:00:00Z",
                      "nightly@2024-05-03T00:00:00Z"]
    again = ok(cli(app_dir, db, "schedule", "backfill", "nightly", "2024-05-01T00:00",
                   "2024-05-03T23:00"))
    assert "backfilled 0 run(s)" in again
    assert sorted(w for w, _ in runs(db_file)) == sorted([*filled, triggered["workflow_id"]])

    ok(cli(app_dir, db, "schedule", "delete", "often"))
    assert [s["schedule_id"] for s in js(cli(app_dir, db, "schedule", "ls", "--json"))] == [
        "nightly"]
    assert len(runs(db_file)) == 4  # deleting a schedule keeps its runs

    # Errors: one line, the documented exit codes, nothing stored.
    for args, code, message in [
        (["delete", "often"], 1, "no schedule 'often'"),
        (["pause", "nope"], 1, "no schedule 'nope'"),
        (["trigger", "nope"], 1, "no schedule 'nope'"),
        (["create", "nightly", "report", "--every", "60"], 1, "exists already"),
        (["create", "x", "report", "--cron", "0 2 * *"], 2, "has 4 fields"),
        (["create", "x", "report", "--cron", "0 2 * * *", "--tz", "Nowhere/Land"], 2,
         "unknown time zone"),
        (["create", "x", "app.py:report", "a", "b", "c", "--every", "60"], 2,
         "wrong arguments"),
        (["create", "x", "report", "--every", "soon"], 2, "not a duration"),
        (["backfill", "nightly", "yesterday", "2024-01-01"], 2, "not an ISO 8601 time"),
        (["update", "nope", "--every", "60"], 1, "no schedule 'nope'"),
        (["update", "nightly", "--cron", "0 2 * *"], 2, "has 4 fields"),
        (["update", "nightly", "a", "b", "c", "-m", "app.py"], 2, "report"),
        (["update", "nightly", "--cron", "0 2 * * *", "--every", "60"], 2, "not allowed"),
    ]:
        proc = cli(app_dir, db, "schedule", *args)
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert [s["schedule_id"] for s in js(cli(app_dir, db, "schedule", "ls", "--json"))] == [
        "nightly"]
    assert ok(cli(app_dir, f"sqlite:///{app_dir}/empty.db", "schedule", "create", "e",
                  "report", "--every", "1h"))  # a new database is created for it


async def _create_schema(url: str) -> None:
    async with duro.Engine(url, worker=False):
        pass


def test_schedulers_in_three_processes_and_a_restart_start_each_tick_once(
        app_dir: Path) -> None:
    """Real time, real processes: two worker processes race for the ticks of a
    one-second schedule declared in code; one of them stops and a new one takes its
    place. Every tick from the first to the last fired has exactly one run."""
    db_file = app_dir / "race.db"
    db = f"sqlite:///{db_file}"
    asyncio.run(_create_schema(db))  # up front, so the racing processes only read it

    def driver(seconds: float) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "driver.py", db, str(seconds)],
                                cwd=app_dir, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    long = driver(6.0)
    short = driver(2.5)
    try:
        out, err = short.communicate(timeout=CALL_TIMEOUT)
        assert short.returncode == 0, err
        restarted = driver(2.5)
        out2, err2 = restarted.communicate(timeout=CALL_TIMEOUT)
        assert restarted.returncode == 0, err2
        out3, err3 = long.communicate(timeout=CALL_TIMEOUT)
        assert long.returncode == 0, err3
    finally:
        for proc in (long, short):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=CALL_TIMEOUT)
    started = [int(o.split()[-1]) for o in (out, out2, out3)]
    with sqlite3.connect(db_file) as conn:
        created, last, fired, missed = conn.execute(
            "SELECT created_at, last_fire_at, fired, missed FROM schedules "
            "WHERE schedule_id = 'every-second'").fetchone()
        ids = [r[0] for r in conn.execute(
            "SELECT workflow_id FROM runs WHERE workflow_id LIKE 'every-second@%'")]
    counts = Counter(ids)
    assert all(n == 1 for n in counts.values()), counts.most_common(3)
    ticks = [t for t in ScheduleSpec(every=1).ticks(created, last, limit=1000) if t > created]
    assert sorted(ids) == [tick_workflow_id("every-second", t) for t in ticks]
    assert len(ids) >= 4 and fired == len(ids) and missed == 0
    assert sum(started) == len(ids)


def test_duro_worker_fires_code_declared_schedules(app_dir: Path) -> None:
    db_file = app_dir / "w.db"
    db = f"sqlite:///{db_file}"
    worker = subprocess.Popen([sys.executable, "-m", "duro", "--db", db, "worker", "app.py"],
                              cwd=app_dir, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        done: list[str] = []
        while time.monotonic() < deadline and len(done) < 3:
            time.sleep(0.2)
            if db_file.exists():
                try:
                    done = [w for w, s in runs(db_file)
                            if w.startswith("every-second@") and s == "completed"]
                except sqlite3.OperationalError:
                    continue  # the schema is being created
        assert len(done) >= 3, worker.stderr
        info = js(cli(app_dir, db, "schedule", "show", "every-second", "--json"))
        assert info["source"] == "code" and info["fired"] >= 3
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.communicate(timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate(timeout=CALL_TIMEOUT)


def test_schedule_times_are_printed_in_the_schedules_zone(app_dir: Path) -> None:
    db = f"sqlite:///{app_dir / 'z.db'}"
    created = ok(cli(app_dir, db, "schedule", "create", "nightly", "app.py:report", "daily",
                     "--cron", "0 2 * * *", "--tz", "Europe/Berlin"))
    berlin = re.compile(r"\d{4}-\d\d-\d\d 02:00:00 Europe/Berlin")
    assert berlin.search(created), created
    assert berlin.search(ok(cli(app_dir, db, "schedule", "ls"))), "ls"
    shown = ok(cli(app_dir, db, "schedule", "show", "nightly"))
    assert berlin.search(shown) and "last tick" in shown, shown
    # --utc: the same instant in UTC, labelled (01:00 in winter, 00:00 in summer).
    utc = re.compile(r"\d{4}-\d\d-\d\d 0[01]:00:00 UTC")
    for action in (["ls"], ["show", "nightly"], ["resume", "nightly"]):
        text = ok(cli(app_dir, db, "schedule", *action, "--utc"))
        assert utc.search(text) and not berlin.search(text), (action, text)
    listed = js(cli(app_dir, db, "schedule", "ls", "--json"))[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT02:00:00\+0[12]:00", listed["next_fire_local"])
