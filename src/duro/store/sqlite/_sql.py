"""The named queries and migrations that live beside this module as .sql files."""

from __future__ import annotations

from duro.store._sqlfiles import load_migrations, load_queries

__all__ = ["migrations", "queries"]


def queries() -> dict[str, str]:
    """Named queries from ``queries.sql`` (comments dropped, no trailing semicolon)."""
    return load_queries(__package__ or __name__.rpartition(".")[0])


def migrations() -> list[tuple[int, str, str]]:
    """Numbered migrations as (version, name, sql), in order."""
    return load_migrations(__package__ or __name__.rpartition(".")[0])
