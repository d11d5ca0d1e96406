"""Operator rough edges (issue 22): ``duro ls/show/history/queues/stats`` open the
database read-only (a user who may only read it can inspect it, and nothing is written:
no migration, no ``-wal``/``-shm`` left behind); ``duro run`` leaves a step routed to
another queue to that queue's workers (``--queue`` to run it here); ``duro queues``
shows the step tasks waiting for a queue's workers. Real CLI subprocesses, bounded."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import duro
from tests.conftest import read_only, run

APPS = Path(__file__).parent / "apps"
CALL_TIMEOUT = 60.0


def cli(db: str, *args: str, timeout: float = CALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    env.update(PYTHONUTF8="1", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "duro", "--db", db, *args], cwd=APPS,
                          env=env, capture_output=True, text=True, timeout=timeout)


def ok(db: str, *args: str) -> str:
    proc = cli(db, *args)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr}"
    return proc.stdout


@duro.workflow(name="op.hello")
async def hello(name: str) -> str:
    return f"hello {name}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


INSPECT = (("ls",), ("ls", "--json"), ("show", "ro-1"), ("history", "ro-1"), ("queues",),
           ("stats",))


def test_inspection_commands_read_a_database_they_may_not_write(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "app.db"
    url = f"sqlite:///{path}"

    async def setup() -> None:
        async with duro.Engine(url, workflows=[hello]) as engine:
            assert await (await engine.start(hello, "ro", id="ro-1")).result(timeout=10) \
                == "hello ro"

    run(setup())
    before = sorted(os.listdir(folder))
    assert before == ["app.db"]  # a clean close leaves no -wal/-shm
    digest = _digest(path)
    # Neither the file nor its directory can be written (root too: chattr +i), as for
    # an operator who may only read them.
    with read_only(folder), read_only(path):
        for args in INSPECT:
            out = ok(url, *args)
            if args[0] in ("ls", "show", "history"):
                assert "ro-1" in out or "op.hello" in out, (args, out)
    assert sorted(os.listdir(folder)) == before
    assert _digest(path) == digest, "an inspection wrote to the database"


def test_inspection_beside_a_running_writer_sees_its_commits_and_leaves_its_files(
        tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    url = f"sqlite:///{path}"

    async def main() -> None:
        async with duro.Engine(url, workflows=[hello]) as engine:
            await (await engine.start(hello, "live", id="live-1")).result(timeout=10)
            files = sorted(os.listdir(tmp_path))
            assert files == ["live.db", "live.db-shm", "live.db-wal"]
            stats = {n: os.stat(tmp_path / n).st_ino for n in files}
            listed = json.loads(ok(url, "ls", "--json"))
            assert [r["workflow_id"] for r in listed] == ["live-1"]
            assert {n: os.stat(tmp_path / n).st_ino for n in os.listdir(tmp_path)} == stats
            # The writer goes on writing after the reader left.
            await (await engine.start(hello, "again", id="live-2")).result(timeout=10)
        assert os.listdir(tmp_path) == ["live.db"]

    run(main())


def test_a_file_that_is_not_a_duro_database_is_refused_and_left_as_it_is(
        tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    digest = _digest(path)
    proc = cli(f"sqlite:///{path}", "ls")
    assert proc.returncode == 4, proc.stderr
    assert "not a duro database" in proc.stderr
    assert _digest(path) == digest and os.listdir(tmp_path) == ["other.db"]


def test_a_read_only_store_refuses_writes_with_a_typed_error(any_db_url: str) -> None:
    sep = "&" if "?" in any_db_url else "?"

    async def main() -> None:
        async with duro.Engine(any_db_url, workflows=[hello]) as engine:
            await (await engine.start(hello, "x", id="rw-1")).result(timeout=10)
        async with duro.Client(f"{any_db_url}{sep}mode=ro") as reader:
            assert [r.workflow_id for r in await reader.list()] == ["rw-1"]
            assert await reader.get_handle("rw-1").result(timeout=5) == "hello x"
            with pytest.raises(duro.DatabaseReadOnlyError, match="read-only"):
                await reader.start(hello, "y", id="rw-2")
        async with duro.Client(any_db_url) as writer:
            assert [r.workflow_id for r in await writer.list()] == ["rw-1"]
        with pytest.raises(duro.InvalidStoreURLError, match="mode"):
            duro.Client(f"{any_db_url}{sep}mode=readonly")

    run(main())


def test_duro_run_leaves_a_step_of_another_queue_to_its_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gpu.db"
    proc = cli(url, "run", "gpu_app:movie", "1", "--id", "m1", "--timeout", "3")
    assert proc.returncode == 124, proc.stderr  # nobody serves gpu: the run waits
    queues = {q["queue"]: q for q in json.loads(ok(url, "queues", "--json"))}
    assert queues["gpu"]["tasks_pending"] == 1 and queues["gpu"]["tasks_running"] == 0
    table = ok(url, "queues")
    assert "STEPS WAITING" in table and "gpu" in table and "no queues" not in table
    history = json.loads(ok(url, "history", "m1", "--json"))
    assert [e["name"] for e in history if e["kind"] == "step_completed"] == ["gpu.prepare"]
    # A worker of the queue runs it; `duro run` attached again sees the result.
    worker = subprocess.Popen([sys.executable, "-m", "duro", "--db", url, "worker", "gpu_app",
                               "--queue", "gpu"], cwd=APPS, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        out = ok(url, "run", "gpu_app:movie", "--id", "m1", "--timeout", "30", "-q")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert json.loads(out) == f"frame 2 rendered by pid {worker.pid}"
    # With --queue gpu, `duro run` runs it itself.
    started = time.monotonic()
    out = ok(url, "run", "gpu_app:movie", "5", "--queue", "gpu", "--timeout", "30", "-q")
    assert json.loads(out).startswith("frame 6 rendered by pid ")
    assert time.monotonic() - started < 30
    bad = cli(url, "run", "gpu_app:movie", "5", "--queue", "", "--timeout", "5")
    assert bad.returncode == 2 and "--queue" in bad.stderr


def test_inspection_commands_on_either_store(any_db_url: str) -> None:
    """On PostgreSQL the commands read in read-only sessions (the server refuses any
    write they might make), without migrating or starting a writer."""

    async def setup() -> None:
        async with duro.Engine(any_db_url, workflows=[hello]) as engine:
            await (await engine.start(hello, "pg", id="ro-1")).result(timeout=10)

    run(setup())
    for args in INSPECT:
        out = ok(any_db_url, *args)
        if args[0] in ("ls", "show", "history"):
            assert "ro-1" in out or "op.hello" in out, (args, out)
