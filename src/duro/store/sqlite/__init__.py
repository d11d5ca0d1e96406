"""The SQLite store (embedded, the default)."""

from __future__ import annotations

from duro.store.sqlite._backend import backend
from duro.store.sqlite._store import SqliteStore, parse_sqlite_url

__all__ = ["SqliteStore", "backend", "parse_sqlite_url"]
