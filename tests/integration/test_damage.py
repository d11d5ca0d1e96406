"""Damage that used to go unnoticed (issue 13, item 8): a corrupt row in ``runs`` and
a SQLite file deleted or replaced under a running engine."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

import duro
from duro.errors import CorruptRunError, DatabaseFileLostError
from tests.conftest import run, wait_until


@duro.workflow(name="dmg.echo")
async def echo(value: int) -> int:
    return value


@duro.workflow(name="dmg.nap")
async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"


def execute(url: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    """One statement straight into the store's database, as a damaging hand would."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(sql, params)
        return
    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    with psycopg.connect(url.split("?")[0], autocommit=True) as pg:
        pg.execute(f'SET search_path = "{schema}"')
        pg.execute(sql.replace("?", "%s"), params)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    env.update(PYTHONUTF8="1", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "duro", "--db", url, *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_a_corrupt_status_is_listed_not_fatal(any_db_url: str) -> None:
    """One row with a status duro does not know: listings show it as ``corrupt`` (with
    what is wrong), every other row as before; waiting for it raises a clear error;
    the worker goes on serving the others."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            for i in range(3):
                await (await engine.start(echo, i, id=f"ok-{i}")).result(timeout=10)
            sleeper = await engine.start(nap, 3600, id="sleeper")
            await wait_until(lambda: _is(sleeper, duro.RunStatus.SUSPENDED))
            execute(any_db_url, "UPDATE runs SET status = 'bogus' WHERE workflow_id = ?",
                    ("ok-1",))
            execute(any_db_url, "UPDATE runs SET status = 'zombie' WHERE workflow_id = ?",
                    ("sleeper",))
            runs = {r.workflow_id: r for r in await engine.list()}
            assert set(runs) == {"ok-0", "ok-1", "ok-2", "sleeper"}
            assert runs["ok-1"].status == duro.RunStatus.CORRUPT
            assert runs["ok-1"].damage == "unknown status 'bogus'"
            assert runs["ok-0"].status == duro.RunStatus.COMPLETED and not runs["ok-0"].damage
            described = await engine.get_handle("sleeper").describe()
            assert described.status == duro.RunStatus.CORRUPT
            with pytest.raises(CorruptRunError, match="bogus"):
                await engine.get_handle("ok-1").result(timeout=5)
            with pytest.raises(CorruptRunError, match="zombie"):
                await sleeper.result(timeout=5)
            # A start with the damaged run's id finds it (the id is taken) and says so.
            again = await engine.start(echo, 9, id="ok-1")
            with pytest.raises(CorruptRunError):
                await again.result(timeout=5)
            # The worker never takes up the damaged run, and keeps working.
            assert await (await engine.start(echo, 7, id="after")).result(timeout=10) == 7
            await asyncio.sleep(0.5)
            assert (await engine.get_handle("sleeper").describe()).damage == (
                "unknown status 'zombie'")

    run(main())


def test_a_corrupt_status_through_the_cli(any_db_url: str) -> None:
    async def seed() -> None:
        async with duro.Engine(any_db_url) as engine:
            for i in range(2):
                await (await engine.start(echo, i, id=f"cli-{i}")).result(timeout=10)

    run(seed())
    execute(any_db_url, "UPDATE runs SET status = 'bogus' WHERE workflow_id = ?", ("cli-1",))
    listed = cli(any_db_url, "ls")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    rows = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:]}
    assert rows == {"cli-0": "completed", "cli-1": "corrupt"}
    assert "cli-1" in listed.stderr and "unknown status 'bogus'" in listed.stderr
    as_json = cli(any_db_url, "ls", "--json")
    assert as_json.returncode == 0, as_json.stderr
    damaged = {r["workflow_id"]: r.get("damage") for r in json.loads(as_json.stdout)}
    assert damaged == {"cli-0": None, "cli-1": "unknown status 'bogus'"}
    shown = cli(any_db_url, "show", "cli-1")
    assert shown.returncode == 0, shown.stderr
    assert "corrupt" in shown.stdout and "unknown status 'bogus'" in shown.stdout


def test_a_time_that_is_not_a_number_on_sqlite(db_url: str) -> None:
    """SQLite keeps any value in any column: a text timestamp is damage too."""

    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            await (await engine.start(echo, 1, id="t-1")).result(timeout=10)
            await (await engine.start(echo, 2, id="t-2")).result(timeout=10)
            execute(db_url, "UPDATE runs SET created_at = 'yesterday' WHERE workflow_id = ?",
                    ("t-1",))
            runs = {r.workflow_id: r for r in await engine.list()}
            assert runs["t-1"].status == duro.RunStatus.CORRUPT
            assert runs["t-1"].damage == "created_at is 'yesterday', not a number"
            assert runs["t-2"].status == duro.RunStatus.COMPLETED

    run(main())
    assert cli(db_url, "ls").returncode == 0


async def _is(handle: duro.WorkflowHandle[Any], status: duro.RunStatus) -> bool:
    return await handle.status() == status


# -- the SQLite file deleted or replaced under a running engine ----------------------

@duro.step(name="dmg.tick")
async def tick(i: int) -> int:
    await asyncio.sleep(0.01)
    return i


@duro.workflow(name="dmg.ticker")
async def ticker(count: int) -> int:
    total = 0
    for i in range(count):
        total += await tick(i)
    return total


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_the_sqlite_file_lost_under_a_running_engine_is_reported(
        tmp_path: Path, how: str) -> None:
    """Deleted (or another file moved into its place) with a run in flight: the loss is
    reported, typed, and nothing is acknowledged after it; the worker stops."""
    path = tmp_path / "duro.db"
    url = f"sqlite:///{path}"

    async def main() -> None:
        async with duro.Engine(url) as engine:
            assert engine.worker is not None
            handle = await engine.start(ticker, 100_000, id="in-flight")
            await wait_until(lambda: _steps_done(handle, 20))
            if how == "deleted":
                path.unlink()
            else:
                other = tmp_path / "other.db"
                sqlite3.connect(other).close()
                os.replace(other, path)
            with pytest.raises(DatabaseFileLostError, match=how):
                await handle.result(timeout=10)
            with pytest.raises(DatabaseFileLostError, match=how):
                await engine.start(echo, 1, id="after")
            with pytest.raises(DatabaseFileLostError):
                await engine.list()
            with pytest.raises(DatabaseFileLostError):  # the worker stopped
                await asyncio.wait_for(engine.run_forever(), 10)
            assert isinstance(engine.worker.failure, DatabaseFileLostError)
            assert not engine.worker.active

    run(main())


async def _steps_done(handle: duro.WorkflowHandle[Any], count: int) -> bool:
    return sum(e.kind == "step_completed" for e in await handle.history()) >= count


def test_duro_worker_exits_when_its_sqlite_file_is_deleted(tmp_path: Path) -> None:
    """An idle ``duro worker`` notices at its next lease renewal (within lease/3) and
    exits with the store's exit code and the reason, instead of serving a ghost."""
    path = tmp_path / "duro.db"
    apps = Path(__file__).parents[1] / "acceptance" / "apps"
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    env.update(PYTHONUTF8="1", NO_COLOR="1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", f"sqlite:///{path}", "worker", "cli_app"],
        cwd=apps, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        assert "duro worker ready" in worker.stdout.readline()
        path.unlink()
        _, err = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 4, err
    assert "was deleted while this store had it open" in err
    assert "Traceback" not in err
