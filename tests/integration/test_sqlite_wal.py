"""The SQLite store pre-sizes its write-ahead log (commits overwrite instead of growing
it); the padding must never cost data, also after kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import duro
from duro.store.sqlite import SqliteStore
from duro.store.sqlite._wal import presize_wal
from tests.conftest import run

ROOT = Path(__file__).resolve().parents[2]


def _target(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return 32 + (1000 + 64) * (24 + page)


def test_opening_a_store_presizes_its_wal_once(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"

    async def main() -> None:
        store = SqliteStore(f"sqlite:///{path}")
        await store.open()
        try:
            size = os.path.getsize(f"{path}-wal")
            assert size == _target(path)
            # Already that large: nothing added, and commits reuse the file in place.
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                assert presize_wal(conn) == 0
                assert not conn.in_transaction
            finally:
                conn.close()
            assert os.path.getsize(f"{path}-wal") == size
        finally:
            await store.close()

    run(main())


def _wal_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (x)")
    return conn


def test_presizing_through_a_symbolic_link_extends_the_real_log(tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    link = tmp_path / "link.db"
    link.symlink_to(real)
    conn = _wal_db(link)
    try:
        assert presize_wal(conn) > 0
        assert not conn.in_transaction
        assert os.path.getsize(f"{real}-wal") == _target(real)
    finally:
        conn.close()


def test_no_presizing_where_it_would_not_help_or_must_not_wait(tmp_path: Path) -> None:
    conn = _wal_db(tmp_path / "a.db")
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    try:
        wal = f"{tmp_path / 'a.db'}-wal"
        before = os.path.getsize(wal)
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the log may grow without bound
        assert presize_wal(conn) == 0
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
        conn.execute("PRAGMA synchronous = NORMAL")  # commits do not sync the log
        assert presize_wal(conn) == 0
        conn.execute("PRAGMA synchronous = FULL")
        # Another connection holds the write lock: give up at once, nothing changed.
        other.execute("BEGIN IMMEDIATE")
        conn.execute("PRAGMA busy_timeout = 0")
        assert presize_wal(conn) == 0
        assert not conn.in_transaction
        assert os.path.getsize(wal) == before
        other.execute("ROLLBACK")
        assert presize_wal(conn) == _target(tmp_path / "a.db") - before
    finally:
        other.close()
        conn.close()


_CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys
    import duro

    @duro.step
    async def add(i: int) -> int:
        return i + 1

    @duro.workflow(name="wal_chain")
    async def chain(n: int) -> int:
        total = 0
        for i in range(n):
            total += await add(i)
        return total

    async def main() -> None:
        engine = duro.Engine(sys.argv[1])
        await engine.__aenter__()
        handles = [await engine.start(chain, 40, id=f"wal-{i}") for i in range(5)]
        for h in handles:
            await h.result(timeout=60)
        print("done", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no checkpoint, no clean close

    asyncio.run(main())
""")


def test_a_padded_wal_recovers_every_commit_after_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(script), f"sqlite:///{path}"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "done"
    # The log was left as the process had it: committed frames, then the zero padding.
    assert os.path.getsize(f"{path}-wal") >= _target(path)

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    @duro.workflow(name="wal_chain")
    async def chain(n: int) -> int:
        return n

    async def main() -> None:
        async with duro.Engine(f"sqlite:///{path}", worker=False) as engine:
            for i in range(5):
                handle = engine.get_handle(f"wal-{i}")
                assert await handle.result(timeout=10) == sum(range(1, 41))
                kinds = [e.kind for e in await handle.history()]
                assert kinds.count("step_completed") == 40
                assert kinds[-1] == "run_completed"

    run(main())
