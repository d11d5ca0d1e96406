"""``duro db``: the database schema (``migrate``: apply pending migrations; ``schema``:
print the schema as the migrations made it)."""

from __future__ import annotations

import argparse

from duro.cli._common import EXIT_OK, EXIT_USAGE, CliError, Style
from duro.store import backend_for

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
    """Run ``duro db ACTION`` with the store backend of the URL's scheme."""
    backend = backend_for(url)
    if args.db_command == "migrate":
        out.line(await backend.migrate(url))
        return EXIT_OK
    schema = await backend.schema(url)
    if schema is None:
        raise CliError(f"`duro db schema` cannot print a {backend.name} store's schema "
                       "(for SQLite, run `sqlite3 FILE .schema`)", EXIT_USAGE)
    for line in schema.splitlines():
        out.line(line)
    return EXIT_OK
