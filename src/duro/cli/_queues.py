"""``duro queues``: each queue's depth, running count and limits."""

from __future__ import annotations

import argparse

from duro.cli._common import EXIT_OK, Style
from duro.cli._format import dumps, table
from duro.cli._inspect import client
from duro.cli._messages import Command
from duro.client._records import queue_json

__all__ = ["add_commands"]


def add_commands(command: Command) -> None:
    """Add ``queues`` to the ``duro`` parser."""
    queues = command("queues", "show each queue's depth, running runs, step tasks "
                             "waiting for its workers, and limits")
    queues.add_argument("--json", action="store_true", help="print JSON")
    queues.set_defaults(handler=queues_command)


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


async def queues_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Print the queues."""
    async with client(url, read_only=True) as engine:
        stats = await engine.queues()
    if args.json:
        out.line(dumps([queue_json(s) for s in stats], ascii=not out.unicode))
        return EXIT_OK
    if not stats:
        out.line("no queues")
        return EXIT_OK
    rows = []
    for s in stats:
        c = s.config
        rate = "-" if c.rate_limit is None else f"{c.rate_limit}/{c.rate_period:g}s"
        rows.append([c.name, str(s.pending), str(s.suspended), str(s.running),
                     str(s.tasks_pending), str(s.tasks_running),
                     _limit(c.concurrency), _limit(c.per_worker), rate,
                     _limit(c.key_concurrency)])
    # STEPS WAITING: attempts of steps routed here (queue=) that no worker of the queue
    # has claimed yet: a queue nobody serves shows up here.
    for line in table(["QUEUE", "PENDING", "WAITING", "RUNNING", "STEPS WAITING",
                       "STEPS RUNNING", "CONCURRENCY", "PER WORKER", "RATE", "PER KEY"],
                      rows, out):
        out.line(line)
    return EXIT_OK
