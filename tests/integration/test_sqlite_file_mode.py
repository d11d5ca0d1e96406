"""The SQLite database, its -wal and its -shm are created readable by their owner only
(issue 13, item 10): they hold every argument, result and error of every run. A file
that exists keeps the mode its owner gave it."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import duro
from tests.conftest import run


@duro.workflow
async def hello(name: str) -> str:
    return f"hello {name}"


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which files are created world-readable (0644)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _modes(db: Path) -> dict[str, int]:
    return {suffix: stat.S_IMODE(Path(f"{db}{suffix}").stat().st_mode)
            for suffix in ("", "-wal", "-shm")}


def check_modes_while_running(db: Path, expected: int) -> None:
    async def main() -> None:
        async with duro.Engine(f"sqlite:///{db}") as engine:
            handle = await engine.start(hello, "you")
            assert await handle.result(timeout=10) == "hello you"
            # -wal and -shm exist while the database is open (SQLite removes them at
            # the last close): check all three now.
            assert _modes(db) == {"": expected, "-wal": expected, "-shm": expected}

    run(main())


def test_a_new_database_and_its_wal_and_shm_are_private(tmp_path: Path,
                                                         umask_022: None) -> None:
    check_modes_while_running(tmp_path / "new.db", 0o600)


def test_an_existing_database_keeps_its_mode(tmp_path: Path, umask_022: None) -> None:
    db = tmp_path / "shared.db"
    check_modes_while_running(db, 0o600)
    db.chmod(0o640)  # the owner shares it with a group on purpose
    check_modes_while_running(db, 0o640)


def test_the_cli_creates_private_databases(tmp_path: Path, umask_022: None) -> None:
    db = tmp_path / "cli.db"
    result = subprocess.run([sys.executable, "-m", "duro", "--db", f"sqlite:///{db}", "db",
                             "migrate"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with contextlib.suppress(FileNotFoundError):  # removed at close, if they were left
        assert stat.S_IMODE(Path(f"{db}-wal").stat().st_mode) == 0o600
