"""``duro db``: the database schema (``migrate``: apply pending migrations; ``schema``:
print the schema as the migrations made it)."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from duro.cli._common import EXIT_OK, EXIT_USAGE, CliError, Style
from duro.errors import StoreError

__all__ = ["add_arguments", "db_command"]


def add_arguments(parser: argparse.ArgumentParser,
                  parents: list[argparse.ArgumentParser]) -> None:
    """The ``db`` subcommands, under the ``db`` command's parser."""
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    sub.add_parser("migrate", parents=parents,
                   help="apply pending schema migrations (stores also do it when they open, "
                        "unless the URL says ?migrate=false)",
                   description="Apply pending schema migrations to the store's database.")
    sub.add_parser("schema", parents=parents,
                   help="print the store's schema as SQL (PostgreSQL)",
                   description="Print the tables and indexes of the store's schema "
                               "(PostgreSQL), normalized as in schema.sql.")


async def db_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Run ``duro db ACTION``."""
    scheme = url.split(":", 1)[0].lower() if "://" in url else "sqlite"
    postgres = scheme in ("postgresql", "postgres")
    if args.db_command == "migrate":
        if postgres:
            return await _migrate_postgres(url, out)
        return await _migrate_sqlite(url, out)
    if not postgres:
        raise CliError("`duro db schema` needs a postgresql:// URL (for SQLite, run "
                       "`sqlite3 FILE .schema`)", EXIT_USAGE)
    for line in (await _postgres(url, dump=True)).splitlines():
        out.line(line)
    return EXIT_OK


async def _postgres(url: str, *, dump: bool) -> str:
    from duro.store import open_store

    store: Any = open_store(url, migrate=False)  # checks that psycopg is installed
    import psycopg

    from duro.store.postgres._schema import applied_versions, dump_schema, migrate

    try:
        conn = await store._connect()
    except psycopg.Error as exc:
        from duro.store.postgres._writer import short_error

        raise StoreError(f"cannot connect to PostgreSQL at {store._where()}: "
                         f"{short_error(exc)}") from None
    async with conn:
        if dump:
            return await dump_schema(conn, store.schema)
        applied = await migrate(conn, store.schema)
        versions = await applied_versions(conn, store.schema)
    done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
    return f"schema {store.schema!r} is at version {max(versions)} ({done})"


async def _migrate_postgres(url: str, out: Style) -> int:
    out.line(await _postgres(url, dump=False))
    return EXIT_OK


async def _migrate_sqlite(url: str, out: Style) -> int:
    from duro.store.sqlite import SqliteStore

    store = SqliteStore(url)
    await store.open()  # migrates
    await store.close()
    try:
        with sqlite3.connect(store.path) as conn:
            version = conn.execute("SELECT MAX(version) FROM duro_migrations").fetchone()[0]
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the schema version of {store.path}: {exc}") from None
    out.line(f"{store.path} is at schema version {version}")
    return EXIT_OK
