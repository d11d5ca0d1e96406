"""``duro stats``: analytics of the runs created in a window, per workflow and step, with
the most frequent error types (``Client.stats``; every field is defined in
``docs/observability.md``)."""

from __future__ import annotations

import argparse
from datetime import timedelta

from duro._stats import Percentiles, Stats
from duro._usage import UsageTotals
from duro.cli._common import EXIT_OK, Style
from duro.cli._format import dumps, table
from duro.cli._inspect import client
from duro.cli._messages import Command
from duro.cli._schedules import parse_duration

__all__ = ["add_commands", "stats_lines"]


def add_commands(command: Command) -> None:
    """Add ``stats`` to the ``duro`` parser."""
    stats = command("stats", "analytics of the runs: per workflow and step, counts, rates, "
                             "retries, p50/p95/p99 durations, top error types")
    stats.add_argument("--since", type=parse_duration, metavar="DURATION",
                       help="only runs created that long ago or later: 7d, 12h, 30m, 90 "
                            "(seconds); default: every run")
    stats.add_argument("--workflow", metavar="NAME", help="only runs of this workflow name")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=stats_command)


async def stats_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Print the stats."""
    since = None if args.since is None else timedelta(seconds=args.since)
    async with client(url, read_only=True) as engine:
        found = await engine.stats(since=since, workflow=args.workflow)
    if args.json:
        out.line(dumps(found.to_json(), ascii=not out.unicode))
        return EXIT_OK
    for line in stats_lines(found, out):
        out.line(line)
    return EXIT_OK


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.001:
        return f"{value * 1e6:.0f}us"
    return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _timing(p: Percentiles) -> list[str]:
    return [_seconds(p.p50), _seconds(p.p95), _seconds(p.p99)]


def _cost(usage: UsageTotals) -> str:
    cost = f"{usage.cost:.4f}"
    return cost + (f" (+{usage.unpriced_calls} unpriced)" if usage.unpriced_calls else "")


def stats_lines(stats: Stats, out: Style) -> list[str]:
    """The tables of ``duro stats``: workflows, steps, model usage (when any), errors."""
    if not stats.workflows:
        return ["no runs"]
    lines = table(
        ["WORKFLOW", "STARTED", "COMPLETED", "FAILED", "TIMED OUT", "CANCELLED",
         "TERMINATED", "LIVE", "DONE %", "FAILED %", "P50", "P95", "P99"],
        [[w.workflow, str(w.started), str(w.completed), str(w.failed), str(w.timed_out),
          str(w.cancelled), str(w.terminated), str(w.live), _rate(w.completion_rate),
          _rate(w.failure_rate), *_timing(w.durations)] for w in stats.workflows], out)
    if stats.steps:
        lines += ["", *table(
            ["WORKFLOW", "STEP", "ATTEMPTS", "COMPLETED", "RETRIES", "FAILED", "P50", "P95",
             "P99"],
            [[s.workflow, s.step, str(s.attempts), str(s.completed), str(s.retries),
              str(s.failed), *_timing(s.durations)] for s in stats.steps], out)]
    spent = [s for s in stats.steps if s.usage.calls]
    if spent:
        lines += ["", *table(
            ["WORKFLOW", "STEP", "LLM CALLS", "TOKENS IN", "TOKENS OUT", "COST $"],
            [[s.workflow, s.step, str(s.usage.calls), str(s.usage.input_tokens),
              str(s.usage.output_tokens), _cost(s.usage)] for s in spent], out)]
    if stats.errors:
        lines += ["", *table(
            ["WORKFLOW", "STEP", "ERROR", "COUNT"],
            [[e.workflow, e.step or "(run)", e.type, str(e.count)] for e in stats.errors],
            out)]
    return lines
