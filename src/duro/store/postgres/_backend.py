"""The PostgreSQL store as a backend of the registry (``duro.stores``: ``postgresql``).

Importing this needs no psycopg: the store (and the ``postgres`` extra) is loaded when
a URL is opened.
"""

from __future__ import annotations

from typing import Any

from duro.errors import StoreError
from duro.store._registry import StoreBackend

__all__ = ["backend"]


def _open(url: str, **options: Any) -> Any:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise StoreError(
            "PostgreSQL stores need the 'postgres' extra: pip install 'duro[postgres]' "
            "(psycopg 3 and psycopg-pool)") from None
    from duro.store.postgres._store import PostgresStore

    return PostgresStore(url, **options)


async def _connected(url: str, *, dump: bool) -> str:
    import psycopg

    from duro.store.postgres._schema import applied_versions, dump_schema, migrate
    from duro.store.postgres._writer import short_error

    store = _open(url, migrate=False)
    try:
        conn = await store._connect()
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {store._where()}: "
                         f"{short_error(exc)}") from None
    async with conn:
        if dump:
            return await dump_schema(conn, store.schema)
        applied = await migrate(conn, store.schema)
        versions = await applied_versions(conn, store.schema)
    done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
    return f"schema {store.schema!r} is at version {max(versions)} ({done})"


async def _migrate(url: str) -> str:
    return await _connected(url, dump=False)


async def _schema(url: str) -> str | None:
    return await _connected(url, dump=True)


backend = StoreBackend(name="postgresql", schemes=("postgresql", "postgres"),
                       example="postgresql://HOST/DB", open=_open, migrate=_migrate,
                       schema=_schema)
