"""The named queries and migrations that live beside this module as .sql files."""

from __future__ import annotations

from duro.store._sqlfiles import load_migrations, store_queries

__all__ = ["PACKAGE", "migrations", "queries"]

PACKAGE = "duro.store.postgres"


def queries() -> dict[str, str]:
    """Named queries of ``queries.sql`` and ``schedules.sql`` (comments dropped, no
    trailing semicolon)."""
    return store_queries(PACKAGE)


def migrations() -> list[tuple[int, str, str]]:
    """Numbered migrations as (version, name, sql), in order."""
    return load_migrations(PACKAGE)
