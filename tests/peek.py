"""A store's raw contents, for tests that look for what must not be there (a secret
stored in clear) or count rows behind the API's back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.faults import _pg, _sqlite_path

__all__ = ["count_events", "database_bytes"]


def database_bytes(url: str) -> bytes:
    """Everything the store holds, as bytes: the SQLite file and its log, or a text
    dump of every PostgreSQL table of the schema (bytea as hex, and decoded too)."""
    if url.startswith("sqlite"):
        path = Path(_sqlite_path(url))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"))
                        if p.exists())
    out = []
    with _pg(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        out.append(bytes(value))
                        out.append(bytes(value).hex().encode())
                    elif value is not None:
                        out.append(str(value).encode())
    return b"\n".join(out)


def count_events(url: str, kind: str) -> int:
    """How many history events of ``kind`` the store holds (0 before its schema exists)."""
    sql = "SELECT count(*) FROM events WHERE kind = {p}"
    if url.startswith("sqlite"):
        path = Path(_sqlite_path(url))
        if not path.exists():
            return 0
        with sqlite3.connect(path) as conn:
            try:
                return int(conn.execute(sql.format(p="?"), (kind,)).fetchone()[0])
            except sqlite3.OperationalError:
                return 0
    import psycopg

    with _pg(url) as conn:
        try:
            return int(conn.execute(sql.format(p="%s"), (kind,)).fetchone()[0])
        except psycopg.errors.UndefinedTable:
            return 0
