"""Acceptance tests of the ``duro`` command: the real CLI, in subprocesses, on a real
SQLite file, with the fixture app ``apps/cli_app.py``.

Every wait is bounded: subprocess calls by ``CALL_TIMEOUT``, background processes by
``wait_line``/``wait`` deadlines.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import duro
from tests.conftest import read_only

APPS = Path(__file__).parent / "apps"
APP_FILE = APPS / "cli_app.py"
CALL_TIMEOUT = 30.0
WAIT = 20.0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DURO_DB", "CLI_APP_BRANCH")}
    env.update(PYTHONUTF8="1", NO_COLOR="1", **extra)
    return env


def cli(*args: str, db: str | None, cwd: Path = APPS, timeout: float = CALL_TIMEOUT,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m duro [--db DB] ARGS`` to completion (cwd: the apps folder)."""
    head = ["--db", db] if db is not None else []
    return subprocess.run([sys.executable, "-m", "duro", *head, *args], capture_output=True,
                          text=True, cwd=cwd, env=_env(**(env or {})), timeout=timeout)


class Background:
    """A ``duro`` subprocess whose output lines are read as they come."""

    def __init__(self, *args: str, db: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "duro", "--db", db, *args], cwd=APPS, env=_env(**(env or {})),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: dict[str, list[str]] = {"out": [], "err": []}
        self._queues: dict[str, queue.Queue[str | None]] = {"out": queue.Queue(),
                                                             "err": queue.Queue()}
        self._readers = [threading.Thread(target=self._read, args=(name, pipe), daemon=True)
                         for name, pipe in (("out", self.proc.stdout), ("err", self.proc.stderr))]
        for t in self._readers:
            t.start()

    def _read(self, name: str, pipe: Any) -> None:
        for line in pipe:
            self.lines[name].append(line)
            self._queues[name].put(line)
        self._queues[name].put(None)

    def wait_line(self, stream: str, needle: str, timeout: float = WAIT) -> str:
        """The first new line of ``stream`` ("out" or "err") containing ``needle``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queues[stream].get(timeout=max(left, 0.001))
            except queue.Empty:
                line = None
            if line is not None and needle in line:
                return line
            if line is None:
                raise AssertionError(f"no line with {needle!r} (exit {self.proc.poll()}); "
                                     f"output: {self.output()}")

    def wait(self, timeout: float = WAIT) -> int:
        code = self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=5)
        return code

    def output(self) -> str:
        return "".join(self.lines["out"]) + "\n--- stderr ---\n" + "".join(self.lines["err"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def background() -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for bg in started:
        bg.stop()


def start_bg(started: list[Background], *args: str, db: str,
             env: dict[str, str] | None = None) -> Background:
    bg = Background(*args, db=db, env=env)
    started.append(bg)
    return bg


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "duro.db"


@pytest.fixture
def db(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


def app() -> ModuleType:
    """The fixture app, imported into the test process (to start runs as a client)."""
    if str(APPS) not in sys.path:
        sys.path.insert(0, str(APPS))
    return importlib.import_module("cli_app")


def client_call(db: str, fn: Any, timeout: float = WAIT) -> Any:
    """Run ``await fn(engine)`` with a client-only engine on ``db``."""
    async def go() -> Any:
        async with duro.Engine(db, worker=False) as engine:
            return await asyncio.wait_for(fn(engine), timeout)
    return asyncio.run(go())


def status_of(db: str, workflow_id: str) -> tuple[str, int]:
    async def get(engine: duro.Engine) -> tuple[str, int]:
        info = await engine.get_handle(workflow_id).describe()
        return info.status.value, info.history_length
    result: tuple[str, int] = client_call(db, get)
    return result


def json_out(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- run --------------------------------------------------------------------------------


def test_version() -> None:
    proc = cli("--version", db=None)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"duro {duro.__version__}"


def test_run_prints_progress_and_result_and_is_idempotent_by_id(db: str) -> None:
    proc = cli("run", "cli_app:greet", "world", "3", "--id", "g1", db=db)
    assert proc.returncode == 0, proc.stderr
    expected = {"greeting": "hello world", "total": 4, "note": "world after 3 attempts"}
    assert json.loads(proc.stdout) == expected  # stdout holds the result and nothing else
    err = proc.stderr
    assert "▶ started cli.greet as g1 (run " in err
    assert re.search(r"^  ✓ step cli_app\.add \(#1\) \S+$", err, re.M), err
    assert re.search(r"^  ↻ step cli_app\.flaky \(#2\) attempt 1 failed: RateLimited: slow down "
                     r"\(attempt 1\); retrying in \d+ms$", err, re.M), err
    assert "↻ step cli_app.flaky (#2) attempt 2 failed" in err
    assert re.search(r"^  ✓ step cli_app\.flaky \(#2\) \S+ \(attempt 3\)$", err, re.M), err
    assert "  ⏲ timer fired (#3)" in err
    assert re.search(r"^✓ g1 completed in ", err, re.M), err
    lines = err.splitlines()
    assert lines.index(next(ln for ln in lines if "timer fired" in ln)) > lines.index(
        next(ln for ln in lines if "step cli_app.add" in ln))

    # The id is the idempotency key: running it again reports the same run's outcome,
    # with or without the arguments (the run has its own).
    for argv in (["world", "3"], []):
        again = cli("run", "cli_app:greet", *argv, "--id", "g1", db=db)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == expected
        assert "already completed" in again.stderr
    assert json_out(cli("ls", "--json", db=db))[0]["workflow_id"] == "g1"
    assert len(json_out(cli("ls", "--json", db=db))) == 1


def test_run_by_file_path_with_json_args_and_quiet(db: str, tmp_path: Path) -> None:
    proc = cli("run", str(APP_FILE) + ":echo", "1", "x", '{"a": 1}', "true", "--quiet",
               "--json-args", '{"k": [1, "two"]}', db=db, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"args": [1, "x", {"a": 1}, True],
                                       "kwargs": {"k": [1, "two"]}}
    assert proc.stderr == ""
    array = cli("run", "cli_app:cli.echo", "--json-args", '["a", 2]', "-q", db=db)
    assert json.loads(array.stdout) == {"args": ["a", 2], "kwargs": {}}


def test_failing_workflow_exits_1(db: str) -> None:
    proc = cli("run", "cli_app:fails", "kaboom", "--id", "f1", db=db)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert "✗ step cli_app.explode (#1) failed after 2 attempts: ValueError: kaboom" in (
        proc.stderr)
    assert re.search(r"^✗ f1 failed in .*StepFailedError.*ValueError: kaboom", proc.stderr,
                     re.M), proc.stderr
    assert "Traceback" not in proc.stderr
    verbose = cli("run", "cli_app:fails", "--verbose", db=db)
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "await explode(message)" in verbose.stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "cli_app"], "expected MODULE:WORKFLOW"),
    (["run", "cli_app:nope"], "has no attribute 'nope' (workflows in it: greet, fails"),
    (["run", "cli_app:not_a_workflow"], "is not a @duro.workflow"),
    (["run", "no_such_module:wf"], "no module named 'no_such_module'"),
    (["run", "missing.py:wf"], "no such file"),
    (["run", "broken_app:wf"], "RuntimeError: this app is broken on purpose"),
    (["run", "cli_app:greet"], "missing a required argument: 'name'"),
    (["run", "cli_app:greet", "x", "--json-args", "[1"], "--json-args is not valid JSON"),
    (["run", "cli_app:greet", "--json-args", "3"], "must be a JSON array"),
    (["worker", "json"], "no @duro.workflow found in json"),
    (["run"], "the following arguments are required"),
    (["ls", "--status", "sleeping"], "invalid choice"),
])
def test_usage_errors_exit_2_without_traceback(
    argv: list[str], message: str, db: str, db_path: Path
) -> None:
    proc = cli(*argv, db=db)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(("duro: error:", "  (--verbose")) or (
        "usage:" in proc.stderr)
    assert not db_path.exists()  # nothing was opened, let alone created


def test_run_timeout_exits_124_and_the_run_goes_on(db: str) -> None:
    proc = cli("run", "cli_app:sleepy", "--id", "to1", "--timeout", "0.5", db=db)
    assert proc.returncode == 124, proc.stderr
    assert re.search(r"is still (pending|running|suspended) after 0\.5s", proc.stderr)
    assert f"duro --db {db} run cli_app:sleepy --id to1" in proc.stderr
    status, _ = status_of(db, "to1")
    assert status in ("pending", "suspended")


def test_ctrl_c_leaves_a_durable_run_that_resumes(
    db: str, background: list[Background]
) -> None:
    run = start_bg(background, "run", "cli_app:sleepy", "2.5", "--id", "r1", db=db)
    run.wait_line("err", "✓ step cli_app.add")
    run.proc.send_signal(signal.SIGINT)
    assert run.wait() == 130, run.output()
    err = "".join(run.lines["err"])
    assert "run 'r1' is durable" in err and "--id r1" in err
    assert "Traceback" not in err
    assert status_of(db, "r1")[0] in ("pending", "suspended")

    resumed = cli("run", "cli_app:sleepy", "--id", "r1", db=db)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == "woke up"
    assert "resuming cli.sleepy r1" in resumed.stderr
    kinds = [e["kind"] for e in json_out(cli("history", "r1", "--json", db=db))]
    assert kinds.count("step_completed") == 1  # the finished step did not run again
    assert kinds[-2:] == ["timer_fired", "run_completed"]


def test_a_run_that_no_longer_matches_its_code_parks(
    db: str, background: list[Background]
) -> None:
    first = start_bg(background, "run", "cli_app:shifty", "--id", "p1", db=db,
                     env={"CLI_APP_BRANCH": "a"})
    first.wait_line("err", "✓ step cli_app.add")
    first.proc.send_signal(signal.SIGINT)
    assert first.wait() == 130, first.output()
    # Resumed under code that takes the other branch: its replay no longer matches.
    resumed = cli("run", "cli_app:shifty", "--id", "p1", db=db, env={"CLI_APP_BRANCH": "b"})
    assert resumed.returncode == 1, resumed.stderr
    assert re.search(r"^✗ p1 is parked: NondeterminismError: ", resumed.stderr, re.M), (
        resumed.stderr)
    assert "Traceback" not in resumed.stderr and "duro.worker" not in resumed.stderr
    text = cli("show", "p1", db=db).stdout
    assert re.search(r"^status\s+parked$", text, re.M), text
    assert re.search(r"^parked\s+NondeterminismError: ", text, re.M), text
    assert json_out(cli("ls", "--status", "parked", "--json", db=db))[0]["workflow_id"] == "p1"


# -- inspecting --------------------------------------------------------------------------


def test_ls_show_history(db: str) -> None:
    assert cli("run", "cli_app:greet", "ann", "--id", "g", "-q", db=db).returncode == 0
    assert cli("run", "cli_app:fails", "--id", "f", "-q", db=db).returncode == 1

    runs = json_out(cli("ls", "--json", db=db))
    assert [(r["workflow_id"], r["workflow_name"], r["status"]) for r in runs] == [
        ("f", "cli.fails", "failed"), ("g", "cli.greet", "completed")]
    assert runs[1]["result"]["greeting"] == "hello ann"
    assert runs[0]["error"]["message"].endswith("ValueError: boom")
    assert [r["workflow_id"] for r in json_out(cli("ls", "--status", "failed", "--json",
                                                  db=db))] == ["f"]
    assert [r["workflow_id"] for r in json_out(cli("ls", "--name", "cli.greet", "--json",
                                                  db=db))] == ["g"]
    table = cli("ls", db=db)
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["WORKFLOW", "ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED",
                              "DURATION"]
    assert [row.split()[:3] for row in rows] == [["f", "cli.fails", "failed"],
                                                 ["g", "cli.greet", "completed"]]

    shown = json_out(cli("show", "g", "--json", db=db))
    assert shown["status"] == "completed" and shown["workflow_name"] == "cli.greet"
    assert [(s["op"], s["name"], s["status"], s["attempts"]) for s in shown["steps"]] == [
        (1, "cli_app.add", "completed", 1), (2, "cli_app.flaky", "completed", 3)]
    text = cli("show", "g", db=db).stdout
    assert re.search(r"^status\s+completed$", text, re.M), text
    assert re.search(r"^\s+#2\s+cli_app\.flaky\s+completed\s+3\s+\S+", text, re.M), text
    assert '"greeting": "hello ann"' in text
    failed = cli("show", "f", db=db).stdout
    assert re.search(r"^error\s+duro\.errors\.StepFailedError: .*ValueError: boom", failed,
                     re.M), failed
    assert re.search(r"#1\s+cli_app\.explode\s+failed\s+2\s", failed), failed
    assert "Traceback" not in failed
    assert "Traceback (most recent call last)" in cli("show", "f", "--verbose", db=db).stdout

    events = json_out(cli("history", "g", "--json", db=db))
    assert [e["kind"] for e in events] == [
        "run_started", "step_completed", "step_retrying", "step_retrying", "step_completed",
        "timer_fired", "run_completed"]
    assert [e["seq"] for e in events] == list(range(7))
    assert events[4]["meta"]["attempt"] == 3
    lines = cli("history", "g", db=db).stdout.splitlines()
    assert len(lines) == 8 and lines[0].split()[:3] == ["SEQ", "TIME", "KIND"]
    assert re.search(r"^2\s.*step_retrying\s+#2\s+cli_app\.flaky\s+cli_app\.RateLimited: "
                     r"slow down \(attempt 1\)", lines[3]), lines[3]


def test_ls_on_an_empty_database(db: str) -> None:
    client_call(db, lambda engine: asyncio.sleep(0))  # creates the file
    assert cli("ls", db=db).stdout.strip() == "no runs"
    assert json_out(cli("ls", "--json", db=db)) == []


@pytest.mark.parametrize("command", [["show"], ["history"], ["cancel"], ["terminate"]])
def test_unknown_id_exits_1(command: list[str], db: str) -> None:
    client_call(db, lambda engine: asyncio.sleep(0))
    proc = cli(*command, "nope", db=db)
    assert proc.returncode == 1
    assert "no run with workflow id 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- controlling live runs ----------------------------------------------------------------


def test_cancel_a_run_started_by_duro_run(db: str, background: list[Background]) -> None:
    run = start_bg(background, "run", "cli_app:sleepy", "--id", "c1", db=db)
    run.wait_line("err", "✓ step cli_app.add")
    proc = cli("cancel", "c1", db=db)
    assert proc.returncode == 0, proc.stderr
    assert "cancel requested for c1" in proc.stdout
    assert run.wait() == 3, run.output()
    err = "".join(run.lines["err"])
    assert "⊘ cancel requested" in err and "⊘ c1 was cancelled" in err
    assert run.lines["out"] == []
    assert status_of(db, "c1")[0] == "cancelled"

    again = cli("cancel", "c1", db=db)
    assert again.returncode == 1
    assert "has already ended (cancelled)" in again.stderr


def test_worker_serves_runs_and_terminate_stops_an_attached_run(
    db: str, background: list[Background]
) -> None:
    worker = start_bg(background, "worker", "cli_app", "--concurrency", "8", db=db)
    ready = worker.wait_line("out", "duro worker ready")
    assert "cli.greet" in ready and "cli.sleepy" in ready

    cli_app = app()

    async def start_and_wait(engine: duro.Engine) -> Any:
        handle = await engine.start(cli_app.greet, "w", id="w1")
        return await handle.result(timeout=WAIT)

    # A client-only engine starts it: only the worker process can have run it.
    assert client_call(db, start_and_wait)["greeting"] == "hello w"

    attached = start_bg(background, "run", "cli_app:sleepy", "--id", "t1", db=db)
    attached.wait_line("err", "✓ step cli_app.add")
    proc = cli("terminate", "t1", "--reason", "ops said so", db=db)
    assert proc.returncode == 0, proc.stderr
    assert "terminated t1" in proc.stdout
    assert attached.wait() == 3, attached.output()
    assert "⊘ t1 was terminated" in "".join(attached.lines["err"])
    shown = json_out(cli("show", "t1", "--json", db=db))
    assert shown["status"] == "terminated"
    assert shown["error"]["message"] == "ops said so"
    assert cli("terminate", "t1", db=db).returncode == 1

    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()
    assert "duro worker stopped" in "".join(worker.lines["err"])


# -- the database --------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["ls"], ["show", "x"], ["history", "x"], ["cancel", "x"],
                                     ["terminate", "x"]])
def test_missing_database_exits_4_and_is_not_created(
    command: list[str], db: str, db_path: Path
) -> None:
    proc = cli(*command, db=db)
    assert proc.returncode == 4
    assert f"no database at '{db_path}'" in proc.stderr
    assert not db_path.exists()


def test_database_in_a_missing_directory_exits_4(tmp_path: Path) -> None:
    proc = cli("run", "cli_app:greet", "x", db=f"sqlite:///{tmp_path}/nowhere/duro.db")
    assert proc.returncode == 4
    assert "directory of the database does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_file_that_is_not_a_database_exits_4(db: str, db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, just some text " * 50)
    for argv in (["ls"], ["run", "cli_app:greet", "x"]):
        proc = cli(*argv, db=db)
        assert proc.returncode == 4, proc.stderr
        assert "not a database" in proc.stderr


def test_a_locked_database_exits_4(db: str, db_path: Path) -> None:
    client_call(db, lambda engine: asyncio.sleep(0))
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        proc = cli("run", "cli_app:greet", "x", db=f"{db}?busy_timeout=200")
        listed = cli("ls", db=f"{db}?busy_timeout=200")  # reading needs no lock
    finally:
        holder.close()
    assert proc.returncode == 4
    assert "locked" in proc.stderr
    assert listed.returncode == 0, listed.stderr


def test_a_read_only_database_exits_4(db: str, db_path: Path) -> None:
    client_call(db, lambda engine: asyncio.sleep(0))
    with read_only(db_path):
        proc = cli("run", "cli_app:greet", "x", db=db)
    assert proc.returncode == 4
    assert "read-only" in proc.stderr
