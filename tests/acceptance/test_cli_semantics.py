"""Acceptance tests of the ``duro`` commands for workflow semantics (signal, query,
update, state, retry, reset, fork, show with children): the real CLI in subprocesses,
against a ``duro worker`` (or ``duro run``) subprocess on a real SQLite file, with the
app ``apps/semantics_app.py``.

Runs are started by a client-only engine in this process, so only the worker
subprocess can execute them. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import queue
import re
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

APPS = Path(__file__).parent / "apps"
CALL_TIMEOUT = 30.0
WAIT = 15.0
Q = ("--module", "semantics_app")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    env.update(PYTHONUTF8="1", NO_COLOR="1")
    return env


def cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m duro --db DB ARGS`` to completion (cwd: the apps folder)."""
    return subprocess.run([sys.executable, "-m", "duro", "--db", db, *args],
                          capture_output=True, text=True, cwd=APPS, env=_env(),
                          timeout=CALL_TIMEOUT)


def ok(db: str, *args: str) -> str:
    proc = cli(db, *args)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr}"
    return proc.stdout


def ok_json(db: str, *args: str) -> Any:
    return json.loads(ok(db, *args))


class Background:
    """A ``duro`` subprocess whose stderr (with ``merge``: stdout and stderr) lines are
    read as they come."""

    def __init__(self, db: str, *args: str, merge: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "duro", "--db", db, *args], cwd=APPS, env=_env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else subprocess.PIPE,
            text=True)
        self.lines: list[str] = []
        self.out: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        pipes = [(self.proc.stdout, True)] if merge else [(self.proc.stderr, True),
                                                          (self.proc.stdout, False)]
        self._threads = [threading.Thread(target=self._read, args=pipe, daemon=True)
                         for pipe in pipes]
        for t in self._threads:
            t.start()

    def _read(self, pipe: Any, watched: bool) -> None:
        for line in pipe:
            (self.lines if watched else self.out).append(line)
            if watched:
                self._queue.put(line)
        if watched:
            self._queue.put(None)

    def wait_line(self, needle: str, timeout: float = WAIT) -> str:
        """The first new (watched) line containing ``needle``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                line = None
            if line is not None and needle in line:
                return line
            if line is None:
                raise AssertionError(f"no line with {needle!r}; stderr: {''.join(self.lines)}")

    def wait(self, timeout: float = WAIT) -> int:
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'duro.db'}"


@pytest.fixture
def background() -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for bg in started:
        bg.stop()


@pytest.fixture
def worker(db: str, background: list[Background]) -> Background:
    """A ``duro worker`` serving the app (the database exists once it is ready)."""
    bg = Background(db, "worker", "semantics_app", merge=True)
    background.append(bg)
    bg.wait_line("duro worker ready")
    return bg


def app() -> ModuleType:
    if str(APPS) not in sys.path:
        sys.path.insert(0, str(APPS))
    return importlib.import_module("semantics_app")


def client(db: str, fn: Any, timeout: float = WAIT) -> Any:
    """``await fn(engine)`` with a client-only engine on ``db``."""
    async def go() -> Any:
        async with duro.Engine(db, worker=False) as engine:
            return await asyncio.wait_for(fn(engine), timeout)
    return asyncio.run(go())


def start(db: str, workflow: Any, *args: Any, id: str, **options: Any) -> None:
    async def go(engine: duro.Engine) -> None:
        await engine.start(workflow, *args, id=id, **options)
    client(db, go)


def wait_status(db: str, workflow_id: str, *statuses: str,
                timeout: float = WAIT) -> duro.RunInfo:
    """Poll until the latest run of ``workflow_id`` has one of ``statuses``."""
    async def go(engine: duro.Engine) -> duro.RunInfo:
        while True:
            info = await engine.get_handle(workflow_id).describe()
            if info.status.value in statuses:
                return info
            await asyncio.sleep(0.05)
    try:
        result: duro.RunInfo = client(db, go, timeout)
    except TimeoutError:
        raise AssertionError(f"{workflow_id} not {statuses} within {timeout}s: "
                             f"{ok(db, 'history', workflow_id)}") from None
    return result


def wait_state(db: str, workflow_id: str, key: str, value: Any) -> None:
    async def go(engine: duro.Engine) -> None:
        handle = engine.get_handle(workflow_id)
        while await handle.get_state(key) != value:
            await asyncio.sleep(0.05)
    client(db, go)


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- signal, query, state ---------------------------------------------------------------


def test_signal_completes_a_waiting_run_and_query_and_state_read_it(
    db: str, worker: Background
) -> None:
    start(db, app().waiter, id="w1")
    wait_state(db, "w1", "phase", "waiting")
    assert ok(db, "state", "w1", "phase") == "waiting\n"
    assert ok(db, "state", "w1", "phase", "--json") == '"waiting"\n'
    assert ok(db, "query", "w1", "phase", *Q) == "waiting\n"
    assert ok_json(db, "query", "w1", "phase", "--json", "-m", "semantics_app.py") == "waiting"

    no_module = cli(db, "query", "w1", "phase")
    assert no_module.returncode == 2
    assert "'sem.waiter', which is not imported here" in no_module.stderr
    assert "--module" in no_module.stderr
    unknown = cli(db, "query", "w1", "nope", *Q)
    assert unknown.returncode == 1
    assert "has no query 'nope' (registered: phase)" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    sent = ok(db, "signal", "w1", "go", '{"x": [1, 2]}')
    assert sent.startswith("signal 'go' sent to w1 (run ")
    info = wait_status(db, "w1", "completed")
    assert info.result_json == {"got": {"x": [1, 2]}}
    assert ok_json(db, "state", "w1", "--json") == {"phase": "done"}
    assert re.search(r"^phase\s+\"done\"$", ok(db, "state", "w1"), re.M)

    history = ok_json(db, "history", "w1", "--json")
    received = [e for e in history if e["kind"] == "signal_received"]
    assert [(e["name"], e["data"]) for e in received] == [("go", {"x": [1, 2]})]

    again = cli(db, "signal", "w1", "go", "later")
    assert again.returncode == 1
    assert "has already ended (completed); nothing to signal" in again.stderr
    missing = cli(db, "signal", "nope", "go")
    assert missing.returncode == 1
    assert "no run with workflow id 'nope'" in missing.stderr
    unpublished = cli(db, "state", "w1", "nothing")
    assert unpublished.returncode == 1
    assert "has not published 'nothing'" in unpublished.stderr


# -- update --------------------------------------------------------------------------


def test_update_returns_the_handler_result_and_a_rejected_update_exits_1(
    db: str, worker: Background
) -> None:
    start(db, app().counter, 5, id="c1")
    wait_state(db, "c1", "count", 5)
    assert ok(db, "update", "c1", "add", "3") == "8\n"
    assert ok(db, "query", "c1", "count", *Q) == "8\n"
    assert ok(db, "query", "c1", "count", "100", *Q) == "108\n"

    rejected = cli(db, "update", "c1", "add", "-1")
    assert rejected.returncode == 1, rejected.stderr
    assert "rejected: ValueError: cannot add a negative amount (-1)" in rejected.stderr
    failed = cli(db, "update", "c1", "boom")
    assert failed.returncode == 1, failed.stderr
    assert "update 'boom' failed: RuntimeError: the handler broke" in failed.stderr
    no_handler = cli(db, "update", "c1", "nope")
    assert no_handler.returncode == 1
    assert "rejected" in no_handler.stderr and "no update handler 'nope'" in no_handler.stderr

    stalled = cli(db, "update", "c1", "stall", "--timeout", "0.5", "--id", "st1")
    assert stalled.returncode == 124, stalled.stderr
    assert "had no outcome within 0.5s" in stalled.stderr
    assert "duro update c1 stall --id st1" in stalled.stderr

    # The same update id applies once: the second call returns the recorded outcome.
    assert ok(db, "update", "c1", "add", "2", "--id", "u1") == "10\n"
    assert ok(db, "update", "c1", "add", "2", "--id", "u1") == "10\n"
    assert ok(db, "state", "c1", "count") == "10\n"
    assert ok_json(db, "state", "c1", "--json") == {
        "count": 10, "owner": {"name": "counter", "tags": ["a", "b"]}}

    kinds = [(e["kind"], e["name"]) for e in ok_json(db, "history", "c1", "--json")]
    assert kinds.count(("update_completed", "add")) == 2  # 3, then 2 (once)
    assert ("update_failed", "boom") in kinds
    assert ("update_accepted", "stall") in kinds

    ok(db, "signal", "c1", "stop")
    assert wait_status(db, "c1", "completed").result_json == 10
    late = cli(db, "update", "c1", "add", "1")
    assert late.returncode == 1
    assert "has already ended (completed)" in late.stderr


def test_duro_run_shows_messages_as_they_arrive(
    db: str, background: list[Background]
) -> None:
    run = Background(db, "run", "semantics_app:counter", "1", "--id", "r1")
    background.append(run)
    run.wait_line("started sem.counter as r1")
    wait_state(db, "r1", "count", 1)
    assert ok(db, "update", "r1", "add", "4") == "5\n"
    run.wait_line("update add completed: 5")
    ok(db, "signal", "r1", "stop", '"now"')
    assert run.wait() == 0, "".join(run.lines)
    err = "".join(run.lines)
    assert "• update add accepted ([4])" in err
    assert "• state count = 5" in err
    assert '• signal stop received: "now"' in err
    assert "".join(run.out).strip() == "5"


# -- retry, reset, fork ------------------------------------------------------------------


def test_retry_of_a_failed_run_completes(db: str, worker: Background, tmp_path: Path) -> None:
    log, flag = tmp_path / "log", tmp_path / "flag"
    start(db, app().flaky, str(log), str(flag), id="f1")
    failed = wait_status(db, "f1", "failed")
    assert failed.error is not None and "not there yet" in failed.error.message
    assert lines_of(log) == ["before", "needs_flag"]

    not_failed = cli(db, "retry", "nope")
    assert not_failed.returncode == 1 and "no run with workflow id 'nope'" in not_failed.stderr

    flag.write_text("")
    out = ok_json(db, "retry", "f1", "--json")
    assert out["workflow_id"] == "f1" and out["origin_run_id"] == failed.run_id
    done = wait_status(db, "f1", "completed")
    assert done.run_id == out["run_id"] != failed.run_id
    assert done.result_json == ["before", "flag found", "after"]
    # The step before the failure is reused; the failed step runs again, once.
    assert lines_of(log) == ["before", "needs_flag", "needs_flag", "after"]

    again = cli(db, "retry", "f1")
    assert again.returncode == 1
    assert "only failed, timed-out or cancelled runs can be retried" in again.stderr
    shown = ok(db, "show", "f1")
    assert re.search(rf"^origin\s+retried or reset from f1 \(run {failed.run_id}, sem.flaky, "
                     r"failed\)$", shown, re.M), shown


def test_reset_reruns_only_the_steps_after_the_point_and_fork_makes_a_new_id(
    db: str, worker: Background, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    start(db, app().pipeline, str(log), id="p1")
    first = wait_status(db, "p1", "completed")
    assert lines_of(log) == ["one", "two", "three"]
    history = ok_json(db, "history", "p1", "--json")
    one = next(e["seq"] for e in history if e["kind"] == "step_completed" and e["data"] == "one")

    out = ok(db, "reset", "p1", "--to", str(one + 1))
    assert out.startswith(f"reset p1 to event {one + 1}: new run ")
    assert f"{one + 1} events reused from run {first.run_id}" in out
    again = wait_status(db, "p1", "completed")
    assert again.run_id != first.run_id
    assert lines_of(log) == ["one", "two", "three", "two", "three"]

    bad = cli(db, "reset", "p1", "--to", "999")
    assert bad.returncode == 1
    assert "reset point must be between 1 and" in bad.stderr

    forked = ok_json(db, "fork", "p1", "--to", str(one + 1), "--new-id", "p1-copy", "--json")
    assert forked["workflow_id"] == "p1-copy" and forked["origin_run_id"] == again.run_id
    assert wait_status(db, "p1-copy", "completed").result_json == ["one", "two", "three"]
    assert lines_of(log) == ["one", "two", "three", "two", "three", "two", "three"]
    default = ok(db, "fork", "p1")
    new_id = re.search(r"new run \S+ of (p1-fork-[0-9a-f]{8}) ", default)
    assert new_id, default
    assert wait_status(db, new_id.group(1), "completed").result_json == ["one", "two", "three"]
    assert len(lines_of(log)) == 7  # the whole history was reused: nothing re-ran
    ids = {r["workflow_id"] for r in ok_json(db, "ls", "--json")}
    assert ids == {"p1", "p1-copy", new_id.group(1)}
    shown = ok_json(db, "show", "p1-copy", "--json")
    assert shown["origin"]["relation"] == "forked from"
    assert shown["origin"]["workflow_id"] == "p1"


# -- show, ls ------------------------------------------------------------------------


def test_show_lists_children_and_the_parent(db: str, worker: Background) -> None:
    start(db, app().parent, 2, id="par")
    assert wait_status(db, "par", "completed").result_json == [0, 10]
    shown = ok(db, "show", "par")
    assert re.search(r"^children$", shown, re.M), shown
    assert re.search(r"^  par-child-0\s+sem\.child\s+completed\s+\S+$", shown, re.M), shown
    assert re.search(r"^  par-child-1\s+sem\.child\s+completed\s+\S+$", shown, re.M), shown
    as_json = ok_json(db, "show", "par", "--json")
    assert [(c["workflow_id"], c["workflow_name"], c["status"]) for c in as_json["children"]] == [
        ("par-child-0", "sem.child", "completed"), ("par-child-1", "sem.child", "completed")]
    assert as_json["parent"] is None

    child = ok_json(db, "show", "par-child-1", "--json")
    assert child["parent"]["workflow_id"] == "par"
    assert child["parent_run_id"] == as_json["run_id"]
    assert re.search(rf"^parent\s+par \(run {as_json['run_id']}, sem\.parent, completed\)$",
                     ok(db, "show", "par-child-1"), re.M)
    assert ok(db, "state", "par-child-1", "n") == "1\n"


def test_ls_and_show_display_timed_out_and_continued_as_new_runs(
    db: str, worker: Background
) -> None:
    start(db, app().sleeper, 60, id="slow", execution_timeout=0.3)
    start(db, app().looper, 0, 2, id="loop")
    wait_status(db, "slow", "timed_out")
    last = wait_status(db, "loop", "completed")
    assert last.result_json == 2
    listed = ok(db, "ls")
    assert re.search(r"^slow\s+sem\.sleeper\s+timed_out\s", listed, re.M), listed
    assert len(re.findall(r"^loop\s+sem\.looper\s+continued_as_new\s", listed, re.M)) == 2
    assert ok(db, "ls", "--status", "timed_out", "--json").count('"slow"') == 1
    shown = ok(db, "show", "slow")
    assert re.search(r"^error\s+TimeoutError: the run's execution timeout passed", shown, re.M)
    shown = ok(db, "show", "loop")
    assert re.search(r"^origin\s+continued from loop \(run \S+, sem\.looper, "
                     r"continued_as_new\)$", shown, re.M), shown
    # Continue-as-new carries the published state over; `state` lists all of it.
    assert ok_json(db, "state", "loop", "--json") == {"round-0": 0, "round-1": 1, "round-2": 2}
    history = ok(db, "history", last.origin_run_id or "?")
    assert re.search(r"run_continued_as_new\s+args \[2, 2, true\]", history), history


def test_state_published_right_before_continue_as_new_is_carried_over(
    db: str, worker: Background
) -> None:
    start(db, app().looper, 0, 2, False, id="loop")
    assert wait_status(db, "loop", "completed").result_json == 2
    assert ok_json(db, "state", "loop", "--json") == {"round-0": 0, "round-1": 1, "round-2": 2}


def test_duro_run_follows_continue_as_new(db: str) -> None:
    proc = cli(db, "run", "semantics_app:looper", "0", "2", "false", "--id", "lp")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2"
    assert proc.stderr.count("↻ continued as new with args [") == 2, proc.stderr
    assert proc.stderr.count("▶ new run ") == 2
    assert "• state round-2 = 2" in proc.stderr


def test_duro_run_runs_child_workflows_too(db: str) -> None:
    # `duro run` serves the workflows of the target's module: the children run as well.
    proc = cli(db, "run", "semantics_app:parent", "2", "--id", "rp")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [0, 10]
    assert "  ▶ child sem.child (#1) started as rp-child-0" in proc.stderr
    assert "  ✓ child sem.child (#2) completed: 10" in proc.stderr
