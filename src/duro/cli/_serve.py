"""``duro serve``: the HTTP API (docs/http.md) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import ipaddress
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from duro.cli._common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Style,
    codec,
    port_number,
    stderr,
)
from duro.cli._load import import_target
from duro.cli._messages import Command
from duro.cli._telemetry import tracing
from duro.errors import InvalidArgumentError
from duro.store._url import redact

if TYPE_CHECKING:
    from duro.server import WebhookAuth

__all__ = ["add_commands", "fast_loop"]


def add_commands(command: Command) -> None:
    """Add ``serve`` to the ``duro`` parser."""
    serve = command("serve", "serve the HTTP API (docs/http.md) until SIGINT/SIGTERM")
    serve.add_argument("modules", nargs="*", metavar="MODULE",
                       help="modules with workflows to import: starts by name are then "
                            "checked against their signatures (and run, with --worker)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=port_number, default=8233, help="port (default 8233)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="another host name the server answers to on loopback without "
                            "tokens (a reverse proxy's; repeatable): others are refused "
                            "(DNS rebinding)")
    auth = serve.add_mutually_exclusive_group()
    auth.add_argument("--auth", dest="auth", action="store_true", default=None,
                      help="require API tokens (duro token create): the default on any "
                           "address but loopback")
    auth.add_argument("--no-auth", dest="auth", action="store_false",
                      help="serve without API tokens: the default on loopback; elsewhere "
                           "only behind your own authentication (every caller acts in "
                           "the default namespace)")
    serve.add_argument("--tracing", metavar="SPEC",
                       help="trace with OpenTelemetry (pip install 'duro[otel]'): 'console' "
                            "(spans on stderr) or MODULE:FACTORY returning a TracerProvider; "
                            "a request's traceparent header continues the caller's trace")
    serve.add_argument("--metrics", action="store_true",
                       help="keep Prometheus metrics and serve them at GET /metrics (scope "
                            "read; pip install 'duro[metrics]')")
    serve.add_argument("--worker", action="store_true",
                       help="also run the modules' workflows in this process")
    rpc = serve.add_argument_group("durable RPC", "operations other deployments call with "
                                   "duro.call, and their callbacks (docs/rpc.md)")
    rpc.add_argument("--expose", action="append", default=[], metavar="WORKFLOW",
                     help="serve this workflow as an operation at /v1/operations/WORKFLOW "
                          "(besides those declared with expose=True; repeat for more)")
    rpc.add_argument("--callback-secret-env", default="DURO_CALLBACK_SECRET",
                     metavar="ENVVAR",
                     help="the environment variable with the secret that callbacks to "
                          "POST /v1/callbacks are checked with (default "
                          "DURO_CALLBACK_SECRET; unset: callbacks are off)")
    hooks = serve.add_argument_group(
        "webhook signatures", "require a provider's HMAC-SHA256 signature of the raw body "
        "on some routes (docs/http.md); the secret is read from an environment variable, "
        "never from the command line")
    hooks.add_argument("--webhook-secret", action="append", default=[], type=_route_secret,
                       metavar="ROUTE=ENVVAR", dest="webhook_secrets",
                       help=f"guard ROUTE ({', '.join(_ROUTES)}) with the secret in "
                            "environment variable ENVVAR (repeat a route to accept a "
                            "second secret while rotating)")
    hooks.add_argument("--webhook-header", default="X-Signature", metavar="NAME",
                       help="the header with the signature (default X-Signature; GitHub: "
                            "X-Hub-Signature-256)")
    hooks.add_argument("--webhook-prefix", default="sha256=", metavar="TEXT",
                       help="what precedes the hex digest in it (default 'sha256=')")
    hooks.add_argument("--webhook-timestamp-header", metavar="NAME",
                       help="a header with the delivery's Unix time, signed with the body "
                            "('<time>.<body>') and refused when out of tolerance")
    hooks.add_argument("--webhook-tolerance", type=float, default=300.0, metavar="SECONDS",
                       help="how far that time may be from this server's (default 300)")
    hooks.add_argument("--webhook-id-header", metavar="NAME",
                       help="a header with the provider's delivery id, taken as the signal "
                            "id (e.g. X-GitHub-Delivery)")
    hooks.add_argument("--webhook-namespace", metavar="NS", default="default",
                       help="the namespace signed deliveries act in when API tokens are "
                            "required (the signature stands for a token; default: default)")
    serve.set_defaults(handler=serve_command)


_ROUTES = ("start", "signal-with-start", "signal")
"""The routes ``--webhook-secret`` may guard (``duro.server.WEBHOOK_ROUTES``, named here
so that the CLI loads without the 'server' extra)."""


def _route_secret(raw: str) -> tuple[str, str]:
    route, sep, env = raw.partition("=")
    if not sep or route not in _ROUTES or not env:
        raise argparse.ArgumentTypeError(
            f"expected ROUTE=ENVVAR with ROUTE one of {', '.join(_ROUTES)}, not {raw!r}")
    return route, env


def _webhooks(args: argparse.Namespace) -> dict[str, WebhookAuth]:
    """The ``webhooks`` of ``create_app`` from the command line and the environment."""
    from duro.server import WebhookAuth

    secrets: dict[str, list[bytes]] = {}
    for route, env in args.webhook_secrets:
        value = os.environ.get(env)
        if not value:
            raise CliError(f"--webhook-secret {route}={env}: the environment variable {env} "
                           "is not set, or empty", EXIT_USAGE)
        secrets.setdefault(route, []).append(value.encode())
    try:
        return {route: WebhookAuth(secrets=tuple(values), header=args.webhook_header,
                                   prefix=args.webhook_prefix,
                                   timestamp_header=args.webhook_timestamp_header,
                                   tolerance=args.webhook_tolerance,
                                   id_header=args.webhook_id_header,
                                   namespace=args.webhook_namespace)
                for route, values in secrets.items()}
    except InvalidArgumentError as exc:
        raise CliError(f"webhook options: {exc}", EXIT_USAGE) from None


def fast_loop() -> None:
    """Run ``duro serve`` on uvloop where it is installed (the 'server' extra brings it):
    its event loop takes a fraction of asyncio's time per request (docs/benchmarks.md)."""
    try:
        # By name: the type checker may run where the extra is not installed.
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed_hosts(args: argparse.Namespace, auth: bool) -> list[str] | None:
    """The host names the server answers to: without tokens on loopback (where only the
    address guards the API), loopback's own and those added (a page of another site whose
    name resolves here must get nothing: DNS rebinding); else any."""
    if auth or not _loopback(args.host):
        return None
    return ["localhost", "127.0.0.1", "::1", args.host, *args.allowed_host]


async def serve_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Serve the API over a client of ``url`` (an engine with ``--worker``)."""
    # Off loopback, tokens unless told otherwise in so many words (--no-auth).
    auth = not _loopback(args.host) if args.auth is None else args.auth
    try:
        import uvicorn  # noqa: F401 - here, to say at once what is missing

        from duro.server import create_app
    except ImportError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    webhooks = _webhooks(args)
    for target in args.modules:
        import_target(target)
    if args.worker and not args.modules:
        raise CliError("--worker needs the modules whose workflows it runs", EXIT_USAGE)
    from duro.client import Client, Engine

    metrics = None
    if args.metrics:
        from duro.metrics import Metrics

        try:
            metrics = Metrics()
        except InvalidArgumentError as exc:
            raise CliError(f"--metrics: {exc}", EXIT_USAGE) from None
    with tracing(args.tracing) as traced:
        hooks: list[Any] = [h for h in (traced, metrics) if h is not None]
        client = (Engine(url, worker=True, codec=codec(), interceptors=hooks) if args.worker
                  else Client(url, codec=codec(), interceptors=hooks))
        secret = os.environ.get(args.callback_secret_env) or None
        try:
            app = create_app(client, own_client=True, auth=auth, webhooks=webhooks,
                             metrics=metrics, tracing=traced is not None,
                             expose=args.expose,
                             callback_secret=secret.encode() if secret else None,
                             allowed_hosts=_allowed_hosts(args, auth))
        except InvalidArgumentError as exc:
            raise CliError(f"--expose: {exc}", EXIT_USAGE) from None
        extras = (f"{', metrics at /metrics' if metrics is not None else ''}"
                  f"{', tracing' if traced is not None else ''}")
        return await _serve(args, app, client, auth, url, out, extras)


async def _serve(args: argparse.Namespace, app: Any, client: Any, auth: bool, url: str,
                 out: Style, extras: str) -> int:
    """Serve ``app`` until cancelled (SIGINT/SIGTERM), then shut down gracefully."""
    import uvicorn

    from duro.server import stop_streams

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # `duro` handles SIGINT/SIGTERM: it cancels this command (below)

    server = Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                   lifespan="on", access_log=False))
    # What is alive now (modules, the app) lives as long as the process: out of the
    # collector's sight, its collections stay short (p99 of a start, docs/benchmarks.md).
    gc.freeze()
    serving = asyncio.ensure_future(server.serve())
    await asyncio.sleep(0)
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if serving.done():
        serving.result()  # it failed to start (port taken...): say why
        raise CliError(f"could not serve on {args.host}:{args.port}", EXIT_USAGE)
    port = server.servers[0].sockets[0].getsockname()[1] if server.servers else args.port
    guarded = sorted({route for route, _ in args.webhook_secrets})
    if auth and not await client.tokens.list():
        stderr().line("duro serve: warning: API tokens are required and there are none "
                      "yet: make one with `duro token create NAME --scope write`")
    if not auth and not _loopback(args.host):
        stderr().line(f"duro serve: warning: serving {args.host} without API tokens "
                      "(--no-auth): anyone who reaches it can start, signal and "
                      "terminate runs")
    out.line(f"duro serve ready: http://{args.host}:{port} (db {redact(url)}"
             f"{', API tokens required' if auth else ''}"
             f"{', with a worker' if args.worker else ''}"
             f"{extras}"
             f"{', signed webhooks: ' + ', '.join(guarded) if guarded else ''})")
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        stop_streams(app)  # event streams and long polls end now, not at their timeouts
        server.should_exit = True  # graceful: finish requests, close the client
        await serving
        raise
    return EXIT_OK
