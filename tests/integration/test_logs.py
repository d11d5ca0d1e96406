"""``duro.logger`` (issue 18, item 3): a line is written once, when the workflow's code
first runs past it, not again when another worker replays the history; every record
carries the run's context; ``JsonFormatter`` writes it as fields; ``duro --log-format
json`` writes the worker's lines that way."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import duro
from duro.logs import ContextFilter, JsonFormatter
from tests.conftest import run

APPS = Path(__file__).parent.parent / "acceptance" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import log_app  # noqa: E402


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def captured() -> Iterator[_Records]:
    handler = _Records()
    user = logging.getLogger("duro.user")
    user.addHandler(handler)
    level = user.level
    user.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        user.removeHandler(handler)
        user.setLevel(level)


def test_lines_are_not_repeated_when_another_worker_replays(any_db_url: str,
                                                             captured: _Records) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as first:
            handle = await first.start(log_app.waits, 4, id="waits-1")
            for _ in range(400):  # bounded: the step takes milliseconds
                if any(e.kind == "step_completed" for e in await handle.history()):
                    break
                await asyncio.sleep(0.02)
        assert captured.messages() == ["before the signal", "working on 4"]
        # A new worker takes the run over: it replays "before the signal" and the step's
        # result, and logs only what runs for the first time.
        async with duro.Engine(any_db_url, poll_interval=0.02) as second:
            await second.get_handle("waits-1").signal("go", 10)
            assert await second.get_handle("waits-1").result(timeout=30) == 18
        assert captured.messages() == ["before the signal", "working on 4",
                                       "after the signal: 10"]

    run(main())


def test_records_carry_the_run_context_and_the_callers_line(any_db_url: str,
                                                            captured: _Records) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(log_app.chatty, 3, id="chatty-1")
            assert await handle.result(timeout=30) == 6
            run_id = (await handle.describe()).run_id
        started, working, worked = captured.records
        assert started.duro == {"workflow_id": "chatty-1", "run_id": run_id,  # type: ignore[attr-defined]
                                "workflow": "log_app.chatty", "namespace": "default"}
        assert working.duro == {"workflow_id": "chatty-1", "run_id": run_id,  # type: ignore[attr-defined]
                                "step": "log_app.work", "attempt": 1}
        assert (started.funcName, working.funcName) == ("chatty", "work")
        assert Path(started.pathname).name == "log_app.py"
        assert worked.getMessage() == "worked: 6"

    run(main())


def test_json_formatter_writes_the_context_as_fields() -> None:
    record = logging.LogRecord("duro.user", logging.ERROR, __file__, 1, "failed %s", ("x",),
                               None)
    record.duro = {"workflow_id": "w", "run_id": "r", "step": "s", "attempt": 2}
    record.order = {"id": 7}
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "duro.user",
                                                                "failed x")
    assert (line["workflow_id"], line["run_id"], line["step"], line["attempt"]) == (
        "w", "r", "s", 2)
    assert line["order"] == {"id": 7}
    assert "ValueError: boom" in line["exception"]
    # Outside a run the filter adds an empty context, and the line has no run fields.
    plain = logging.LogRecord("lib", logging.INFO, __file__, 1, "hello", None, None)
    assert ContextFilter().filter(plain) and plain.duro == {}  # type: ignore[attr-defined]
    assert "workflow_id" not in json.loads(JsonFormatter().format(plain))


def test_cli_log_format_json(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/duro.db"
    proc = subprocess.run(
        [sys.executable, "-m", "duro", "--db", db, "--log-format", "json", "-v", "run",
         "log_app:chatty", "5", "--id", "c5"],
        capture_output=True, text=True, cwd=APPS, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["logger"] == "duro.user"]
    assert [line["message"] for line in mine] == ["started with 5", "working on 5",
                                                  "worked: 10"]
    assert all(line["workflow_id"] == "c5" for line in mine)
    assert mine[1]["step"] == "log_app.work" and mine[1]["attempt"] == 1
    bad = subprocess.run([sys.executable, "-m", "duro", "--db", db, "ls"],
                         capture_output=True, text=True, cwd=APPS, timeout=60,
                         env={**__import__("os").environ, "DURO_LOG_FORMAT": "yaml"})
    assert bad.returncode == 2 and "DURO_LOG_FORMAT must be text or json" in bad.stderr
