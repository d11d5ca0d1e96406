"""``duro token create|ls|revoke``: API tokens for ``duro serve``."""

from __future__ import annotations

import argparse

from duro.cli._common import EXIT_OK, Style, stderr
from duro.cli._format import dumps, table
from duro.cli._inspect import client
from duro.cli._messages import Command
from duro.cli._schedules import parse_duration
from duro.client._tokens import SCOPES, TokenInfo

__all__ = ["add_commands"]


def add_commands(command: Command) -> None:
    """Add ``token`` and its subcommands to the ``duro`` parser."""
    token = command("token", "make, list and revoke API tokens for duro serve")
    sub = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create = sub.add_parser("create", help="make a token and print its secret (once)",
                            description="Make an API token. Its secret is printed once: "
                                        "only a hash of it is stored.")
    create.add_argument("name", help="what it is for, e.g. 'billing webhook'")
    create.add_argument("--scope", choices=SCOPES, default="read",
                        help="read: look; write: also start, signal, update, cancel; "
                             "admin: also terminate, reset, fork, delete (default: read)")
    create.add_argument("--namespace", default="default",
                        help="the only namespace it reaches (default: default)")
    create.add_argument("--expires-in", type=parse_duration, metavar="DURATION",
                        help="lifetime, e.g. 90d or 12h (default: until revoked)")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=create_command)
    ls = sub.add_parser("ls", help="list tokens (never their secrets)")
    ls.add_argument("--namespace", default=None, help="only this namespace's")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=ls_command)
    revoke = sub.add_parser("revoke", help="revoke a token: refused from now on")
    revoke.add_argument("token_id", help="the token's id (see duro token ls)")
    revoke.set_defaults(handler=revoke_command)


async def create_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Make a token and print its secret."""
    async with client(url) as engine:
        secret, info = await engine.tokens.create(
            args.name, scope=args.scope, namespace=args.namespace,
            expires_in=args.expires_in)
    if args.json:
        out.line(dumps({**info.to_json(), "token": secret}, ascii=not out.unicode))
        return EXIT_OK
    out.line(secret)
    stderr().line(f"token {info.token_id} ({info.scope}, namespace {info.namespace}): keep the "
             f"line above secret; it is not shown again")
    return EXIT_OK


def _state(info: TokenInfo) -> str:
    if info.revoked_at is not None:
        return "revoked"
    if info.expires_at is not None:
        return f"expires {info.expires_at:%Y-%m-%d %H:%M}Z"
    return "live"


async def ls_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """List tokens."""
    async with client(url) as engine:
        tokens = await engine.tokens.list(namespace=args.namespace)
    if args.json:
        out.line(dumps([t.to_json() for t in tokens], ascii=not out.unicode))
        return EXIT_OK
    if not tokens:
        out.line("no tokens")
        return EXIT_OK
    rows = [[t.token_id, t.namespace, t.scope, _state(t), f"{t.created_at:%Y-%m-%d %H:%M}Z",
             t.name] for t in tokens]
    for line in table(["ID", "NAMESPACE", "SCOPE", "STATE", "CREATED", "NAME"], rows, out):
        out.line(line)
    return EXIT_OK


async def revoke_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Revoke a token."""
    async with client(url) as engine:
        info = await engine.tokens.revoke(args.token_id)
    out.line(f"revoked token {info.token_id} ({info.name})")
    return EXIT_OK
