"""``duro budgets`` and ``duro budget set-limit``: the shared budgets' spend per key and
window, and an operator's limits (docs/agents.md, "Budgets")."""

from __future__ import annotations

import argparse
import datetime as dt

from duro.cli._common import EXIT_OK, Style
from duro.cli._format import dumps, table
from duro.cli._inspect import client
from duro.cli._messages import Command
from duro.store._budgets import BudgetSpend

__all__ = ["add_commands"]


def add_commands(command: Command) -> None:
    """Add ``budgets`` and ``budget set-limit`` to the ``duro`` parser."""
    budgets = command("budgets", "the shared budgets' spend per key and window "
                                 "(duro.Budget(key=...)), latest window first")
    budgets.add_argument("--key", default=None, help="only this budget key")
    budgets.add_argument("--limit", type=int, default=100, help="rows at most (default 100)")
    budgets.add_argument("--json", action="store_true", help="print JSON")
    budgets.set_defaults(handler=list_command)
    budget = command("budget", "set a shared budget's limits")
    sub = budget.add_subparsers(dest="budget_command", metavar="COMMAND", required=True)
    limit = sub.add_parser(
        "set-limit", help="set the limits of a key's current window",
        description="Set the limits of a budget key's current (latest) window, in place "
                    "of those its runs give: raise them and the runs paused by it "
                    "(on_exceeded='pause') go on within 30 seconds. Without --usd and "
                    "--tokens: back to the runs' own limits.")
    limit.add_argument("key", help="the budget key, e.g. tenant:acme")
    limit.add_argument("--usd", type=float, default=None, help="the limit in US dollars")
    limit.add_argument("--tokens", type=int, default=None, help="the limit in tokens")
    limit.add_argument("--json", action="store_true", help="print JSON")
    limit.set_defaults(handler=set_limit_command)


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _window(b: BudgetSpend) -> str:
    if b.period is None:
        return "all time"
    start = dt.datetime.fromtimestamp(b.window_start, dt.UTC)
    return f"{start:%Y-%m-%d %H:%M}Z +{b.period:g}s"


def _print(rows: list[BudgetSpend], args: argparse.Namespace, out: Style) -> None:
    if args.json:
        out.line(dumps([b.to_json() for b in rows], ascii=not out.unicode))
        return
    if not rows:
        out.line("no budget spend recorded")
        return
    lines = [[b.key, _window(b), _money(b.spent_usd), _money(b.limit_usd),
              str(b.spent_tokens), "-" if b.limit_tokens is None else str(b.limit_tokens),
              str(b.settled), str(b.in_flight)] for b in rows]
    for line in table(["KEY", "WINDOW", "SPENT $", "LIMIT $", "TOKENS", "LIMIT TOKENS",
                       "CALLS", "IN FLIGHT"], lines, out):
        out.line(line)


async def list_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Print the shared budgets' spend."""
    async with client(url) as engine:
        rows = await engine.budgets.list(args.key, limit=args.limit)
    _print(rows, args, out)
    return EXIT_OK


async def set_limit_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Set a key's limits and print its row."""
    async with client(url) as engine:
        row = await engine.budgets.set_limit(args.key, usd=args.usd, tokens=args.tokens)
    _print([row], args, out)
    return EXIT_OK
