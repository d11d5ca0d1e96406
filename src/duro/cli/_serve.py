"""``duro serve``: the HTTP API (docs/http.md) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
from collections.abc import Iterator

from duro.cli._common import EXIT_OK, EXIT_USAGE, CliError, Style, codec
from duro.cli._load import import_target
from duro.cli._messages import Command
from duro.store._url import redact

__all__ = ["add_commands"]


def add_commands(command: Command) -> None:
    """Add ``serve`` to the ``duro`` parser."""
    serve = command("serve", "serve the HTTP API (docs/http.md) until SIGINT/SIGTERM")
    serve.add_argument("modules", nargs="*", metavar="MODULE",
                       help="modules with workflows to import: starts by name are then "
                            "checked against their signatures (and run, with --worker)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; a loopback address "
                            "only, until API tokens exist)")
    serve.add_argument("--port", type=_port, default=8233, help="port (default 8233)")
    serve.add_argument("--worker", action="store_true",
                       help="also run the modules' workflows in this process")
    serve.set_defaults(handler=serve_command)


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Serve the API over a client of ``url`` (an engine with ``--worker``)."""
    if not _loopback(args.host):
        raise CliError(f"refusing to listen on {args.host!r}: the API has no authentication "
                       "yet (API tokens are a later step), so it serves loopback addresses "
                       "only", EXIT_USAGE)
    try:
        import uvicorn

        from duro.server import create_app, stop_streams
    except ImportError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    for target in args.modules:
        import_target(target)
    if args.worker and not args.modules:
        raise CliError("--worker needs the modules whose workflows it runs", EXIT_USAGE)
    from duro.client import Client, Engine

    client = (Engine(url, worker=True, codec=codec()) if args.worker
              else Client(url, codec=codec()))
    app = create_app(client, own_client=True)

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # `duro` handles SIGINT/SIGTERM: it cancels this command (below)

    server = Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                   lifespan="on", access_log=False))
    serving = asyncio.ensure_future(server.serve())
    await asyncio.sleep(0)
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if serving.done():
        serving.result()  # it failed to start (port taken...): say why
        raise CliError(f"could not serve on {args.host}:{args.port}", EXIT_USAGE)
    port = server.servers[0].sockets[0].getsockname()[1] if server.servers else args.port
    out.line(f"duro serve ready: http://{args.host}:{port} (db {redact(url)}"
             f"{', with a worker' if args.worker else ''})")
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        stop_streams(app)  # event streams and long polls end now, not at their timeouts
        server.should_exit = True  # graceful: finish requests, close the client
        await serving
        raise
    return EXIT_OK
