"""``duro step complete|fail|heartbeat TOKEN``: the outside side of
``duro.complete_later()`` — a step attempt completed, failed or heartbeaten by the token
it handed out (``duro.step_info().completion_token``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from duro.cli._common import EXIT_OK, Style
from duro.cli._inspect import client
from duro.cli._messages import Command

__all__ = ["add_commands"]


def _value(text: str | None) -> Any:
    """JSON if it parses, else the text itself (as ``duro run`` reads arguments)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def add_commands(command: Command) -> None:
    """Add ``step`` (complete, fail, heartbeat) to the ``duro`` parser."""
    from duro.cli._main import _common  # the --db/-v options, accepted after the action

    parser = command("step", "complete, fail or heartbeat a step attempt that waits for "
                             "it (duro.complete_later), by its token")
    sub = parser.add_subparsers(dest="step_command", metavar="ACTION", required=True)
    parents = [_common(suppress=True)]
    complete = sub.add_parser("complete", parents=parents,
                              help="complete the attempt with a result")
    complete.add_argument("token", metavar="TOKEN",
                          help="the attempt's duro.step_info().completion_token")
    complete.add_argument("result", nargs="?", metavar="RESULT",
                          help="the step's result: JSON if it parses, else a string "
                               "(default null)")
    complete.set_defaults(handler=complete_command)
    fail = sub.add_parser("fail", parents=parents,
                          help="fail the attempt (its retry policy applies)")
    fail.add_argument("token", metavar="TOKEN")
    fail.add_argument("message", metavar="MESSAGE", help="what went wrong")
    fail.add_argument("--type", default="ExternalError", help="the error's type name")
    fail.add_argument("--non-retryable", action="store_true",
                      help="fail the step for good (no retry)")
    fail.set_defaults(handler=fail_command)
    beat = sub.add_parser("heartbeat", parents=parents,
                          help="keep progress details for the attempt")
    beat.add_argument("token", metavar="TOKEN")
    beat.add_argument("details", nargs="?", metavar="DETAILS",
                      help="JSON if it parses, else a string")
    beat.set_defaults(handler=heartbeat_command)


async def complete_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Complete a step attempt."""
    async with client(url) as engine:
        await engine.steps.complete(args.token, _value(args.result))
    out.line(f"completed step attempt {args.token}")
    return EXIT_OK


async def fail_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Fail a step attempt."""
    async with client(url) as engine:
        await engine.steps.fail(args.token, args.message, type=args.type,
                                non_retryable=args.non_retryable)
    out.line(f"failed step attempt {args.token}")
    return EXIT_OK


async def heartbeat_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Heartbeat a step attempt."""
    async with client(url) as engine:
        await engine.steps.heartbeat(args.token, _value(args.details))
    out.line(f"heartbeat kept for step attempt {args.token}")
    return EXIT_OK
