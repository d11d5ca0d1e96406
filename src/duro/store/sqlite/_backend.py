"""The SQLite store as a backend of the registry (``duro.stores``: ``sqlite``)."""

from __future__ import annotations

import os
import sqlite3

from duro.errors import StoreError
from duro.store._registry import StoreBackend
from duro.store.sqlite._store import SqliteStore, parse_sqlite_url

__all__ = ["backend"]


async def _migrate(url: str) -> str:
    store = SqliteStore(url)
    await store.open()  # migrates
    await store.close()
    try:
        with sqlite3.connect(store.path) as conn:
            version = conn.execute("SELECT MAX(version) FROM duro_migrations").fetchone()[0]
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the schema version of {store.path}: {exc}") from None
    return f"{store.path} is at schema version {version}"


async def _schema(url: str) -> str | None:
    return None  # `sqlite3 FILE .schema` prints it


def _missing(url: str) -> str | None:
    path = parse_sqlite_url(url)[0]
    if path == ":memory:" or os.path.exists(os.path.abspath(path)):
        return None
    return f"no database at {os.path.abspath(path)!r}"


backend = StoreBackend(name="sqlite", schemes=("sqlite",), example="sqlite:///PATH",
                       open=SqliteStore, migrate=_migrate, schema=_schema, missing=_missing)
