"""``duro approvals``, ``duro approve`` and ``duro reject``: the human side of
``duro.approval()`` — the inbox of pending approvals, and deciding one.

Clients of the store (or of a server, ``--url``): the decision reaches the waiting run
through its inbox, whether or not a worker runs it now.
"""

from __future__ import annotations

import argparse

from duro.cli._common import EXIT_OK, Style
from duro.cli._format import dumps, short_json, table
from duro.cli._inspect import client
from duro.cli._messages import Command
from duro.client._approvals import ApprovalInfo

__all__ = ["add_commands"]


def add_commands(command: Command) -> None:
    """Add ``approvals``, ``approve`` and ``reject`` to the ``duro`` parser."""
    ls = command("approvals", "list the approvals runs wait for (duro.approval): the pending "
                              "ones, oldest first")
    ls.add_argument("--all", action="store_true",
                    help="every approval, decided, timed out or ended too")
    ls.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    ls.set_defaults(handler=approvals_command)
    for verb, help_text in (("approve", "approve a pending approval: the run goes on"),
                            ("reject", "reject a pending approval: the run goes on")):
        decide = command(verb, help_text)
        decide.add_argument("approval_id", metavar="ID",
                            help="the approval's id (see duro approvals)")
        decide.add_argument("--by", metavar="NAME",
                            help="who decides, recorded in the run's history (default: "
                                 "the OS user; through a server with a token: its name)")
        decide.add_argument("--comment", metavar="TEXT", help="why, recorded with it")
        decide.add_argument("--json", action="store_true", help="print the approval as JSON")
        decide.set_defaults(handler=decide_command, approved=verb == "approve")


async def approvals_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """List approvals."""
    async with client(url) as engine:
        found = await engine.approvals.all(status=None if args.all else "pending",
                                           workflow=args.workflow)
    if args.json:
        out.line(dumps([a.to_json() for a in found], ascii=not out.unicode))
        return EXIT_OK
    if not found:
        out.line("no approvals" if args.all else "no pending approvals")
        return EXIT_OK
    rows = [_row(a) for a in found]
    for line in table(["ID", "NAME", "WORKFLOW", "REQUESTED", "STATUS", "BY", "CONTEXT"], rows,
                      out, status_column=4):
        out.line(line)
    return EXIT_OK


def _row(a: ApprovalInfo) -> list[str]:
    return [a.approval_id, a.name, a.workflow_id, f"{a.requested_at:%Y-%m-%d %H:%M:%S}Z",
            a.status, a.decided_by or "-", short_json(a.context, 50)]


async def decide_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Approve or reject one approval."""
    async with client(url) as engine:
        info = await engine.approvals.decide(args.approval_id, approved=args.approved,
                                             by=args.by, comment=args.comment)
    if args.json:
        out.line(dumps(info.to_json(), ascii=not out.unicode))
        return EXIT_OK
    out.line(f"{info.status} {info.approval_id} ({info.name!r} of {info.workflow_id}) "
             f"by {info.decided_by}")
    return EXIT_OK
