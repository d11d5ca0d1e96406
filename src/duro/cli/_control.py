"""``duro retry``, ``reset`` and ``fork``: new runs made from an existing run's history.

Each creates the new run and returns at once; a worker (``duro worker``, ``duro run``
or an embedded engine) executes it, reusing the copied history: steps recorded in it
are not executed again.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from duro.cli._common import EXIT_FAILED, EXIT_OK, CliError, Style
from duro.cli._format import dumps
from duro.cli._inspect import client
from duro.cli._messages import Command, resolve
from duro.client import Client, WorkflowHandle
from duro.errors import DuroError, RunNotFoundError

__all__ = ["add_commands"]


def add_commands(command: Command) -> None:
    """Add ``retry``, ``reset`` and ``fork`` to the ``duro`` parser."""
    keep = ("keep the history's first SEQ events (seq 0 to SEQ-1, as `duro history` "
            "numbers them) and continue live from there")
    retry = command("retry", "re-run a failed or timed-out run from where it failed, or "
                             "resume a cancelled run from just before its cancellation, as "
                             "a new run of the same workflow id")
    retry.add_argument("id", metavar="ID", help="workflow id (or run id)")
    retry.add_argument("--json", action="store_true", help="print JSON")
    retry.set_defaults(handler=retry_command)

    reset = command("reset", "start a new run of the same workflow id from a prefix of a "
                             "run's history (a live run is terminated first)")
    reset.add_argument("id", metavar="ID", help="workflow id (or run id)")
    reset.add_argument("--to", type=int, required=True, metavar="SEQ", help=keep)
    reset.add_argument("--json", action="store_true", help="print JSON")
    reset.set_defaults(handler=reset_command)

    fork = command("fork", "start a run under a new workflow id from a prefix of a run's "
                           "history (the original is left alone)")
    fork.add_argument("id", metavar="ID", help="workflow id (or run id)")
    fork.add_argument("--to", type=int, metavar="SEQ",
                      help=keep + " (default: all of it but the run's end)")
    fork.add_argument("--new-id", metavar="WORKFLOW_ID",
                      help="the new run's workflow id (default: ID-fork-XXXXXXXX)")
    fork.add_argument("--json", action="store_true", help="print JSON")
    fork.set_defaults(handler=fork_command)


async def _copy(args: argparse.Namespace, url: str, out: Style, verb: str,
                make: Callable[[Client], Awaitable[WorkflowHandle[Any]]]) -> int:
    async with client(url) as engine:
        source = await resolve(engine, args.id)
        try:
            handle = await make(engine)
        except RunNotFoundError:
            raise
        except (DuroError, ValueError) as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
        new = await handle.describe()
    if args.json:
        out.line(dumps({"workflow_id": new.workflow_id, "run_id": new.run_id,
                        "workflow_name": new.workflow_name, "status": new.status.value,
                        "origin_run_id": source.run_id}, ascii=not out.unicode))
        return EXIT_OK
    out.line(f"{verb}: new run {new.run_id} of {new.workflow_id} ({new.status.value}, "
             f"{new.history_length} events reused from run {source.run_id})")
    out.line(f"a worker serving {new.workflow_name!r} executes it; follow it with "
             f"`duro show {new.workflow_id}`")
    return EXIT_OK


async def retry_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Retry a failed run."""
    return await _copy(args, url, out, f"retried {args.id}", lambda engine: engine.retry(args.id))


async def reset_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Reset a run to a prefix of its history."""
    return await _copy(args, url, out, f"reset {args.id} to event {args.to}",
                       lambda engine: engine.reset(args.id, to=args.to))


async def fork_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Fork a run under a new workflow id."""
    return await _copy(args, url, out, f"forked {args.id}",
                       lambda engine: engine.fork(args.id, to=args.to, new_id=args.new_id))
