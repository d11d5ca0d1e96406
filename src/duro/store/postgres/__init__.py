"""The PostgreSQL store (multi-host): ``postgresql://user@host:port/db?schema=duro``.

Needs the ``postgres`` extra (``pip install 'duro[postgres]'``: psycopg 3 and psycopg-pool).
"""

from __future__ import annotations

from duro.store.postgres._store import PostgresStore
from duro.store.postgres._url import PgOptions, parse_postgres_url

__all__ = ["PgOptions", "PostgresStore", "parse_postgres_url"]
