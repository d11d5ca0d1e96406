"""``duro cache ls|clear``: the durable step cache (``client.cache``)."""

from __future__ import annotations

import argparse

from duro.cli._common import EXIT_OK, Style
from duro.cli._format import dumps, table
from duro.cli._inspect import client
from duro.cli._messages import Command

__all__ = ["add_commands"]


def add_commands(command: Command) -> None:
    """Add ``cache`` and its subcommands to the ``duro`` parser."""
    cache = command("cache", "list and clear the durable step cache (@duro.step(cache=...))")
    sub = cache.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)
    ls = sub.add_parser("ls", help="entry counts per step and scope")
    clear = sub.add_parser("clear", help="delete cached results: the next call runs the step",
                           description="Delete cached step results (every one of the "
                                       "namespace unless --step, --scope or --expired "
                                       "narrow it).")
    for parser in (ls, clear):
        parser.add_argument("--step", metavar="NAME", help="only this step's (its name)")
        parser.add_argument("--scope", metavar="KEY",
                            help="only this scope's (a tenant...); '' is the global scope")
        parser.add_argument("--json", action="store_true", help="print JSON")
    clear.add_argument("--expired", action="store_true", help="only those past their ttl")
    ls.set_defaults(handler=ls_command)
    clear.set_defaults(handler=clear_command)


async def ls_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """List the cache's entry counts."""
    async with client(url) as engine:
        groups = await engine.cache.list(step=args.step, scope=args.scope)
    if args.json:
        out.line(dumps([g.to_json() for g in groups], ascii=not out.unicode))
        return EXIT_OK
    if not groups:
        out.line("no cached results")
        return EXIT_OK
    rows = [[g.namespace, g.step, g.scope or "(global)", str(g.entries), str(g.expired),
             f"{g.newest:%Y-%m-%d %H:%M}Z"] for g in groups]
    for line in table(["NAMESPACE", "STEP", "SCOPE", "ENTRIES", "EXPIRED", "NEWEST"], rows,
                      out):
        out.line(line)
    return EXIT_OK


async def clear_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Delete cached results."""
    async with client(url) as engine:
        deleted = await engine.cache.invalidate(step=args.step, scope=args.scope,
                                                expired=args.expired)
    if args.json:
        out.line(dumps({"deleted": deleted}, ascii=not out.unicode))
    else:
        out.line(f"deleted {deleted} cached result{'' if deleted == 1 else 's'}")
    return EXIT_OK
