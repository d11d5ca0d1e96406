"""Migrations of a PostgreSQL schema, and a normalized dump of it (``schema.sql``).

Regenerate the snapshot after adding a migration by migrating a scratch schema and
dumping it::

    duro db migrate --db 'postgresql://.../db?schema=scratch'
    duro db schema --db 'postgresql://.../db?schema=scratch' > src/duro/store/postgres/schema.sql
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from duro.errors import StoreError
from duro.store._sqlfiles import pending_migrations
from duro.store.postgres._sql import PACKAGE, migrations

__all__ = ["applied_versions", "dump_schema", "migrate"]

_TRACK = ("CREATE TABLE IF NOT EXISTS duro_migrations (version INTEGER PRIMARY KEY, "
          "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")


def _known() -> int:
    return max((v for v, _, _ in migrations()), default=0)


async def applied_versions(conn: psycopg.AsyncConnection[Any], schema: str) -> list[int]:
    """Versions recorded in the schema's ``duro_migrations`` (empty when there is none)."""
    cur = await conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'duro_migrations'",
        (schema,))
    if await cur.fetchone() is None:
        return []
    cur = await conn.execute(f'SELECT version FROM "{schema}".duro_migrations ORDER BY 1')
    return [int(r[0]) for r in await cur.fetchall()]


async def migrate(conn: psycopg.AsyncConnection[Any], schema: str) -> list[int]:
    """Create the schema if needed and apply pending migrations, in one transaction under
    an advisory lock (workers starting together apply each migration once). Returns the
    versions applied now. ``conn`` is in autocommit mode with its search_path on
    ``schema``."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                           (f"duro.migrate.{schema}",))
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path = "{schema}"')
        await conn.execute(_TRACK)
        cur = await conn.execute("SELECT version FROM duro_migrations")
        done = {int(r[0]) for r in await cur.fetchall()}
        for version, name, sql in pending_migrations(PACKAGE, done, f"{schema!r} "):
            await conn.execute(sql.encode())  # several statements: no parameters
            await conn.execute("INSERT INTO duro_migrations VALUES (%s, %s, %s)",
                               (version, name, time.time()))
            applied.append(version)
    return applied


async def check_current(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    """Raise a clear error unless the schema has every migration (for ``migrate=false``)."""
    versions = await applied_versions(conn, schema)
    have = max(versions, default=0)
    if have < _known():
        raise StoreError(
            f"the database schema {schema!r} is at version {have}, this duro needs "
            f"{_known()}: run `duro db migrate --db URL` (or drop ?migrate=false)")
    if have > _known():
        raise StoreError(f"the database schema {schema!r} (version {have}) is newer than "
                         f"this duro (version {_known()}); upgrade duro")


async def dump_schema(conn: psycopg.AsyncConnection[Any], schema: str) -> str:
    """The schema's tables, constraints and indexes as normalized SQL, without the schema
    name, so that two schemas made by the same migrations dump identically."""
    out: list[str] = []
    cur = await conn.execute(
        "SELECT c.oid, c.relname, c.reloptions FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY c.relname", (schema,))
    tables = await cur.fetchall()
    for oid, name, reloptions in tables:
        cur = await conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid), a.attidentity "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum", (oid,))
        cols = []
        for col, typ, notnull, default, identity in await cur.fetchall():
            text = f"    {col} {typ}"
            if identity:
                text += " GENERATED " + ("ALWAYS" if identity == "a" else "BY DEFAULT") \
                    + " AS IDENTITY"
            if default is not None:
                text += f" DEFAULT {default}"
            if notnull:
                text += " NOT NULL"
            cols.append(text)
        with_ = f" WITH ({', '.join(sorted(reloptions))})" if reloptions else ""
        out.append(f"CREATE TABLE {name} (\n" + ",\n".join(cols) + f"\n){with_};")
        cur = await conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s ORDER BY conname", (oid,))
        for con, definition in await cur.fetchall():
            out.append(f"ALTER TABLE {name} ADD CONSTRAINT {con} {definition};")
        cur = await conn.execute(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
            "ORDER BY i.relname", (oid,))
        for _, definition in await cur.fetchall():
            out.append(definition.replace(f"{schema}.", "").replace(f'"{schema}".', "") + ";")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
