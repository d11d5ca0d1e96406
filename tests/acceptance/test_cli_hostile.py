"""The ``duro`` command on hostile input (issue 13, items 9 and 10): bad URLs, ids,
arguments and options give one clear line and a non-zero exit, never a traceback; a
URL's password is never printed; control characters read from the database are printed
escaped. Each test runs the real CLI in subprocesses."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import duro
from tests.acceptance.test_cli import APPS, Background, cli

SECRET = "s3cr3t-pw"
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What must never reach the terminal from data: controls other than newline and tab."""


def hostile() -> str:
    if str(APPS) not in sys.path:
        sys.path.insert(0, str(APPS))
    import hostile_app

    return hostile_app.HOSTILE


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single ``duro: error:`` line of a failed command."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("duro: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("url", [
    f"postgresql://app:{SECRET}@[::1/db",
    f"postgresql://app:{SECRET}@db.example:notaport/db",
    f"postgresql://app:{SECRET}@db.example:99999/db",
    f"postgresql://app:{SECRET}@db.example/db?shema=typo",
    f"postgresql://app:{SECRET[:4]}%ZZ@db.example/db",
    f"postgresql://app@db.example/db?password={SECRET}&bogus=1",
    f"mysql://app:{SECRET}@db.example/db",
    "sqlite:///x.db?busy_timeout=soon",
])
def test_a_malformed_store_url_is_one_line_without_the_password(url: str) -> None:
    line = one_line_error(cli("ls", db=url), 4)
    assert SECRET not in line and SECRET[:4] not in line
    assert "URL" in line


@pytest.mark.parametrize("args, code, message", [
    (["--db", "garbage", "ls"], 4, "no database at"),
    (["--db", "sqlite:///nonexistent/dir/x.db", "ls"], 4, "no database at"),
    (["run", "hostile_app:echo", "--json-args", "{bad"], 2, "not valid JSON"),
    (["run", "hostile_app:typed", "[1]"], 2, "expected dict, got list"),
    (["run", "hostile_app:typed", '{"a": "x"}'], 2, "argument 'd'"),
    (["run", "hostile_app:echo", "x", "--id", ""], 2, "workflow id"),
    (["run", "hostile_app:echo", "x", "--id", "   "], 2, "workflow id"),
    (["run", "hostile_app:echo", "x", "--id", "a\x1b[2Jb"], 2, r"a\x1b[2Jb"),
    (["run", "hostile_app:echo", "x", "--id", "x" * 1001], 2, "at most 1000"),
    (["fork", "nope"], 1, "no run with workflow id"),
    (["show", "nope"], 1, "no run with workflow id"),
    (["history", "nope"], 1, "no run with workflow id"),
    (["cancel", "nope"], 1, "no run with workflow id"),
    (["signal", "nope", "go"], 1, "no run with workflow id"),
    (["state", "nope"], 1, "no run with workflow id"),
    (["schedule", "create", "feb", "hostile_app:echo", "x", "--cron", "0 0 30 2 *"], 2,
     "never fires"),
    (["schedule", "create", "", "hostile_app:echo", "x", "--every", "60"], 2, "schedule id"),
])
def test_bad_input_gives_one_clear_line_and_no_traceback(
        tmp_path: Path, args: list[str], code: int, message: str) -> None:
    db = tmp_path / "duro.db"
    cli("db", "migrate", db=f"sqlite:///{db}")  # an empty database, for the lookups
    full = args if args[0] == "--db" else ["--db", f"sqlite:///{db}", *args]
    line = one_line_error(cli(*full, db=None), code)
    assert message in line
    assert not RAW_CONTROL.search(line)


@pytest.mark.parametrize("option", [
    ["run", "hostile_app:echo", "x", "--timeout", "-1"],
    ["run", "hostile_app:echo", "x", "--timeout", "inf"],
    ["update", "w", "u", "--timeout", "nan"],
    ["ls", "--limit", "0"],
    ["worker", "hostile_app", "--retention-days", "-1"],
    ["worker", "hostile_app", "--grace", "nan"],
    ["worker", "hostile_app", "--concurrency", "0"],
    ["schedule", "create", "s", "hostile_app:echo", "x", "--every", "0"],
    ["schedule", "create", "s", "hostile_app:echo", "x", "--every", "60", "--catch-up", "-5"],
], ids=" ".join)
def test_bad_numbers_are_usage_errors(tmp_path: Path, option: list[str]) -> None:
    result = cli(*option, db=f"sqlite:///{tmp_path}/duro.db")
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert re.search(r"error: (argument|every)", result.stderr), result.stderr


@pytest.mark.postgres
def test_the_worker_and_the_resume_hint_never_print_the_password(pg_url: str) -> None:
    url = pg_url.replace("://postgres@", f"://postgres:{SECRET}@", 1)  # trust: ignored
    assert SECRET in url
    bg = Background("worker", "hostile_app", db=url)
    try:
        ready = bg.wait_line("out", "duro worker ready")
        assert "postgresql://postgres:***@" in ready
        waited = cli("run", "hostile_app:waits", "--timeout", "0.5", "-q", db=url)
        assert waited.returncode == 124
        assert "--db 'postgresql://postgres:***@" in waited.stderr
        bg.proc.send_signal(signal.SIGTERM)
        assert bg.wait() == 0
    finally:
        bg.stop()
    assert SECRET not in bg.output() + waited.stdout + waited.stderr


def _make_hostile_runs(db: str) -> None:
    import hostile_app

    async def go() -> None:
        async with duro.Engine(db) as engine:
            handle = await engine.start(hostile_app.noisy, hostile(), id="noisy")
            with pytest.raises(duro.WorkflowFailedError):
                await handle.result(timeout=20)
            done = await engine.start(hostile_app.echo, hostile(), id="evil")
            assert await done.result(timeout=20) == hostile()

    asyncio.run(go())


def test_control_characters_from_the_database_are_printed_escaped(tmp_path: Path) -> None:
    hostile()
    path = tmp_path / "duro.db"
    db = f"sqlite:///{path}"
    _make_hostile_runs(db)
    # A workflow id with controls can no longer be started, but a database written by
    # an older version (or by hand) may hold one.
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET workflow_id = ? WHERE workflow_id = 'evil'",
                     (f"evil{hostile()}",))
    outputs = []
    for args in (["ls"], ["ls", "--json"], ["show", "noisy"], ["-v", "show", "noisy"],
                 ["show", "noisy", "--json"], ["history", "noisy"],
                 ["history", "noisy", "--json"], ["state", "noisy"],
                 ["state", "noisy", "banner"], ["show", f"evil{hostile()}"],
                 ["history", f"evil{hostile()}"]):
        result = cli(*args, db=db)
        assert result.returncode == 0, (args, result.stderr)
        text = result.stdout + result.stderr
        assert not RAW_CONTROL.search(text), (args, text)
        outputs.append(text)
    everything = "\n".join(outputs)
    assert r"\x1b[2J" in everything and r"\u009b" in everything and r"\u202e" in everything


def test_duro_run_escapes_progress_errors_and_logs(tmp_path: Path) -> None:
    for verbose in ([], ["-v"]):
        result = cli(*verbose, "run", "hostile_app:noisy", hostile(),
                     db=f"sqlite:///{tmp_path}/duro.db")
        assert result.returncode == 1
        text = result.stdout + result.stderr
        assert not RAW_CONTROL.search(text), text
        assert r"boom \x1b[2J\x1b]0;pwned\x07" in text
