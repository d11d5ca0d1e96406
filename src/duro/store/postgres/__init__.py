"""The PostgreSQL store (multi-host): ``postgresql://user@host:port/db?schema=duro``.

Needs the ``postgres`` extra (``pip install 'duro[postgres]'``: psycopg 3 and
psycopg-pool), imported only once :class:`PostgresStore` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from duro.store.postgres._backend import backend
from duro.store.postgres._url import PgOptions, parse_postgres_url

if TYPE_CHECKING:
    from duro.store.postgres._store import PostgresStore

__all__ = ["PgOptions", "PostgresStore", "backend", "parse_postgres_url"]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from duro.store.postgres._store import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
