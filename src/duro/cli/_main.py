"""The ``duro`` command: argument parsing, dispatch, signals and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Coroutine, Sequence
from typing import Any

import duro
from duro._checks import DEFAULT_NAMESPACE, check_namespace
from duro.cli import (
    _approvals,
    _budgets,
    _cache,
    _control,
    _db,
    _export,
    _inspect,
    _messages,
    _queues,
    _run,
    _schedules,
    _serve,
    _stats,
    _steps,
    _tokens,
)
from duro.cli._common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
    CliError,
    SafeFormatter,
    non_negative_number,
    port_number,
    positive_number,
    set_codec,
    set_namespace,
    set_token,
    stderr,
    stdout,
)
from duro.client._url import is_remote
from duro.errors import (
    CodecNotConfiguredError,
    DuroError,
    InvalidArgumentError,
    RunNotFoundError,
    StoreError,
    UnknownKeyError,
)
from duro.logs import ContextFilter, JsonFormatter
from duro.serde import load_codec_chain
from duro.store import RunStatus

__all__ = ["build_parser", "main", "run_cli"]

DEFAULT_DB = "sqlite:///duro.db"

_EPILOG = """\
exit codes: 0 ok; 1 the workflow failed (or: unknown id, run not live, update
rejected or failed, unknown query, other error); 2 usage error (bad MODULE:WORKFLOW,
module not importable, bad arguments, a refused id, option or cron expression); 3 the
run was cancelled or terminated; 4 the database cannot be opened or used (a malformed
--db URL too); 124 `run --timeout` or `update --timeout` expired (the run, or the
update, goes on); 130 interrupted (the run is durable); 141 the output pipe was closed.
"""


def _common(*, suppress: bool) -> argparse.ArgumentParser:
    # The same options before or after the command: `duro --db X ls` and `duro ls --db X`.
    default: Any = argparse.SUPPRESS if suppress else None
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--db", metavar="URL", default=default,
                        help="the store, e.g. sqlite:///duro.db (default: $DURO_DB, "
                             f"else {DEFAULT_DB})")
    parent.add_argument("--url", metavar="URL", default=default,
                        help="act through a duro server (duro serve) instead of a database, "
                             "e.g. http://host:8233 (default: $DURO_URL); not with --db")
    parent.add_argument("--token", metavar="TOKEN", default=default,
                        help="the API token for --url (prefer $DURO_TOKEN: a command line "
                             "is visible to other users of the machine)")
    parent.add_argument("--codec", metavar="MODULE:FACTORY", default=default,
                        help="the codec chain payloads are stored through (encryption, "
                             "compression, offload), e.g. myapp.codecs:make_chain "
                             "(default: $DURO_CODEC, else none)")
    parent.add_argument("--namespace", metavar="NS", default=default,
                        help="the namespace of the runs and schedules to act on "
                             "(default: $DURO_NAMESPACE, else default)")
    parent.add_argument("--log-format", choices=("text", "json"), default=default,
                        help="how logs are written to stderr: text lines, or one JSON "
                             "object per line with the run's workflow id, run id, step and "
                             "attempt (default: $DURO_LOG_FORMAT, else text)")
    parent.add_argument("-v", "--verbose", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="show tracebacks and worker logs")
    return parent


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``duro`` command."""
    sub_parent = _common(suppress=True)
    parser = argparse.ArgumentParser(
        prog="duro", parents=[_common(suppress=False)], epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run and inspect durable workflows.")
    parser.add_argument("--version", action="version", version=f"duro {duro.__version__}")
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return cmds.add_parser(name, help=help, description=help, parents=[sub_parent])

    run = command("run", "start a workflow (or attach to its live run) and wait for it")
    run.add_argument("target", metavar="MODULE:WORKFLOW",
                     help="e.g. app:order (module importable from here) or app.py:order")
    run.add_argument("args", nargs="*", metavar="ARG",
                     help="workflow arguments: JSON if it parses, else a string")
    run.add_argument("--id", help="the workflow id (default: a new one); if a run with it is "
                                  "live, attach to it and resume it")
    run.add_argument("--json-args", metavar="JSON",
                     help="more arguments: a JSON array (positional) or object (keyword)")
    run.add_argument("--timeout", type=positive_number, metavar="S",
                     help="stop waiting after S seconds (exit 124; the run goes on)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print only the result, no progress")
    run.add_argument("--queue", action="append", dest="queues", metavar="NAME",
                     help="also run the steps (and runs) of queue NAME here (repeatable); "
                          "by default steps routed to a queue other than the workflows' "
                          "own are left to that queue's workers (duro worker --queue NAME)")

    worker = command("worker", "serve the workflows of some modules until SIGINT/SIGTERM")
    worker.add_argument("modules", nargs="+", metavar="MODULE",
                        help="modules to import (dotted name or path to a .py file)")
    worker.add_argument("--concurrency", type=_positive_int, default=10_000, metavar="N",
                        help="runs held and executed at once (default 10000)")
    worker.add_argument("--queue", action="append", dest="queues", metavar="NAME",
                        help="serve only this queue (repeatable; default: every queue)")
    worker.add_argument("--grace", type=non_negative_number, default=10.0, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, let running steps finish this long while "
                             "handing runs back (default 10)")
    worker.add_argument("--retention-days", type=positive_number, metavar="DAYS",
                        help="delete finished runs older than this (stores that support it)")
    worker.add_argument("--max-recoveries", type=_positive_int, default=10, metavar="N",
                        help="park a run whose worker died this many times in a row while "
                             "it ran, with nothing recorded (default 10, at least 2)")
    worker.add_argument("--max-child-depth", type=_positive_int, default=100, metavar="N",
                        help="how deeply child workflows may nest (default 100)")

    worker.add_argument("--metrics-port", type=port_number, metavar="PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics "
                             "(pip install 'duro[metrics]'; 0: any free port)")
    worker.add_argument("--tracing", metavar="SPEC",
                        help="trace with OpenTelemetry (pip install 'duro[otel]'): 'console' "
                             "(spans on stderr) or MODULE:FACTORY returning a TracerProvider")
    worker.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                        help="the address --metrics-port listens on (default 127.0.0.1)")
    ls = command("ls", "list runs, newest first")
    ls.add_argument("--status", choices=[s.value for s in RunStatus
                                         if s is not RunStatus.CORRUPT])
    ls.add_argument("--name", help="only runs of this workflow name")
    ls.add_argument("--limit", type=_positive_int, default=50, metavar="N",
                    help="at most N runs (default 50)")
    ls.add_argument("--created-after", type=_inspect.when, metavar="TIME",
                    help="only runs created at or after TIME (ISO 8601 with a UTC offset, "
                         "e.g. 2024-05-01T12:00Z, or epoch seconds)")
    ls.add_argument("--created-before", type=_inspect.when, metavar="TIME",
                    help="only runs created before TIME")
    ls.add_argument("--id-prefix", metavar="PREFIX",
                    help="only runs whose workflow id starts with PREFIX")
    ls.add_argument("--attr", action="append", type=_inspect.attribute, dest="attrs",
                    metavar="KEY=VALUE", help="only runs with this search attribute "
                    "(repeatable, all must match; VALUE is JSON if it parses, else a "
                    "string: amount=12, vip=true, code='\"12\"')")
    ls.add_argument("--cursor", help="continue after the runs an earlier page listed (its "
                                     "next cursor)")
    ls.add_argument("--page", action="store_true",
                    help="with --json, print {\"runs\": [...], \"next_cursor\": ...} "
                         "(implied by --cursor)")
    ls.add_argument("--all-namespaces", action="store_true",
                    help="list the runs of every namespace (not with --namespace)")
    ls.add_argument("--json", action="store_true", help="print JSON")

    show = command("show", "describe a run and its steps")
    show.add_argument("id", metavar="ID", help="workflow id (or run id)")
    show.add_argument("--json", action="store_true", help="print JSON")

    history = command("history", "print a run's history, one event a line")
    history.add_argument("id", metavar="ID", help="workflow id (or run id)")
    history.add_argument("--json", action="store_true", help="print a JSON array")

    cancel = command("cancel", "ask a live run to cancel (CancelledError in the workflow)")
    cancel.add_argument("id", metavar="ID", help="workflow id (or run id)")

    terminate = command("terminate", "stop a live run at once; no more workflow code runs")
    terminate.add_argument("id", metavar="ID", help="workflow id (or run id)")
    terminate.add_argument("--reason", default="terminated from the command line")

    _db.add_arguments(command("db", "manage the database schema (migrations)"), [sub_parent])
    _messages.add_commands(command)
    _control.add_commands(command)
    _queues.add_commands(command)
    _stats.add_commands(command)
    _export.add_commands(command)
    _schedules.add_commands(command)
    _serve.add_commands(command)
    _tokens.add_commands(command)
    _cache.add_commands(command)
    _approvals.add_commands(command)
    _steps.add_commands(command)
    _budgets.add_commands(command)
    return parser


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


async def _guarded(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro``; SIGINT/SIGTERM cancel it (so engines close cleanly) and raise
    ``_Interrupted`` once it has unwound."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    got: list[int] = []

    def on_signal(signum: int) -> None:
        got.append(signum)
        if len(got) == 1:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows, nor off the main thread: there Ctrl-C stays a KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await coro
    except asyncio.CancelledError:
        if got:
            raise _Interrupted(got[0]) from None
        raise


def _dispatch(args: argparse.Namespace, state: _run.RunState) -> Coroutine[Any, Any, int]:
    url: str = args.db
    out = stdout()
    if args.command == "run":
        return _run.run_command(args, url, state, out, stderr())
    if args.command == "worker":
        return _run.worker_command(args, url, out)
    if args.command == "db":
        return _db.db_command(args, url, out)
    handler = getattr(args, "handler", None)
    if handler is not None:
        command: Coroutine[Any, Any, int] = handler(args, url, out)
        return command
    handlers = {"ls": _inspect.ls_command, "show": _inspect.show_command,
                "history": _inspect.history_command, "cancel": _inspect.cancel_command,
                "terminate": _inspect.terminate_command}
    return handlers[args.command](args, url, out)


def _namespace(args: argparse.Namespace) -> str | None:
    """The namespace the command works in: ``--namespace``, else ``$DURO_NAMESPACE``,
    else ``"default"``; None with ``ls --all-namespaces``.

    Raises:
        InvalidArgumentError: Not a valid namespace name (exit 2).
        CliError: Both ``--namespace`` and ``--all-namespaces`` (exit 2).
    """
    given: str | None = getattr(args, "namespace", None)
    if getattr(args, "all_namespaces", False):
        if given is not None:
            raise CliError("pass --namespace or --all-namespaces, not both", EXIT_USAGE)
        return None
    if given is None:
        given = os.environ.get("DURO_NAMESPACE") or DEFAULT_NAMESPACE
    return check_namespace(given)


_LOCAL_ONLY = {"run": "runs the workflow in this process", "worker": "runs workflows",
               "db": "manages the database's schema", "token": "manages the tokens stored "
               "in the database", "serve": "is the server"}
"""The commands that need the database itself, and why: they refuse ``--url``."""


def _server(args: argparse.Namespace, explicit_db: str | None) -> str | None:
    """The server the command acts through (``--url``, else ``$DURO_URL`` unless ``--db``
    is given), if any.

    Raises:
        CliError: (exit 2) ``--url`` with ``--db``, with ``--codec``, or for a command
            that needs the database.
    """
    explicit: str | None = getattr(args, "url", None)
    if explicit is not None and explicit_db is not None:
        raise CliError("--url and --db are exclusive: act through a server or on a "
                       "database", EXIT_USAGE)
    url = explicit or (None if explicit_db is not None else os.environ.get("DURO_URL"))
    if not url:
        return None
    if not is_remote(url):
        raise CliError(f"--url must be a server's http:// or https:// URL, not {url!r} "
                       "(a database is --db)", EXIT_USAGE)
    if args.command in _LOCAL_ONLY:
        raise CliError(f"duro {args.command} {_LOCAL_ONLY[args.command]}: it needs the "
                       "database (--db), not a server (--url)", EXIT_USAGE)
    if getattr(args, "namespace", None) or getattr(args, "all_namespaces", False):
        raise CliError("--namespace does not apply through a server: a request acts in its "
                       "API token's namespace", EXIT_USAGE)
    if getattr(args, "codec", None):
        raise CliError("--codec does not apply through a server: the server encodes payloads "
                       "with its own chain (duro serve --codec)", EXIT_USAGE)
    return url


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run the ``duro`` command with ``argv`` and return its exit code."""
    args = build_parser().parse_args(argv)
    explicit_db: str | None = args.db
    args.db = explicit_db or os.environ.get("DURO_DB") or DEFAULT_DB
    try:
        server = _server(args, explicit_db)
    except CliError as exc:
        stderr().line(f"duro: error: {exc.message}")
        return exc.code
    if server is not None:
        args.db = server  # the commands' client is then a remote one (cli/_inspect.client)
        set_token(getattr(args, "token", None))
    codec_spec = (None if server is not None
                  else getattr(args, "codec", None) or os.environ.get("DURO_CODEC"))
    verbose: bool = args.verbose
    # `duro run` reports what happens to its run itself; a worker's logs are its output.
    quiet_logs = args.command == "run" and not verbose
    handler = logging.StreamHandler(sys.stderr)
    log_format = getattr(args, "log_format", None) or os.environ.get("DURO_LOG_FORMAT") or "text"
    if log_format not in ("text", "json"):
        stderr().line(f"duro: error: DURO_LOG_FORMAT must be text or json, not {log_format!r}")
        return EXIT_USAGE
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        handler.addFilter(ContextFilter())
    else:
        handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=logging.INFO if verbose else logging.CRITICAL if quiet_logs else logging.WARNING,
        handlers=[handler])
    for stream in (sys.stdout, sys.stderr):
        # A name or message the terminal's encoding cannot show must not crash the command.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    err = stderr()
    state = _run.RunState(db=explicit_db, target=getattr(args, "target", ""))
    try:
        set_codec(load_codec_chain(codec_spec) if codec_spec else None)
        set_namespace(_namespace(args))
        if args.command == "serve":
            _serve.fast_loop()
        return asyncio.run(_guarded(_dispatch(args, state)))
    except CliError as exc:
        err.line(f"duro: error: {exc.message}")
        if exc.detail:
            err.line(exc.detail.rstrip() if verbose else "  (--verbose shows the traceback)")
        return exc.code
    except (_Interrupted, KeyboardInterrupt):
        if args.command in ("worker", "serve"):
            err.line(f"duro {args.command} stopped")
            return EXIT_OK
        if args.command == "run" and state.workflow_id is not None:
            err.line(f"\ninterrupted: run {state.workflow_id!r} is durable and stops here; "
                     f"resume it with: {state.resume_command()}")
        else:
            err.line("\ninterrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`duro history | head`): stop quietly, like `cat` would.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except StoreError as exc:  # a malformed --db URL (InvalidStoreURLError) too
        err.line(f"duro: error: {exc}")
        return EXIT_STORE
    except InvalidArgumentError as exc:  # an id, option or cron expression refused
        err.line(f"duro: error: {exc}")
        return EXIT_USAGE
    except RunNotFoundError as exc:
        err.line(f"duro: error: {exc}")
        return EXIT_FAILED
    except (CodecNotConfiguredError, UnknownKeyError) as exc:  # encoded payloads
        err.line(f"duro: error: {type(exc).__name__}: {exc}")
        err.line("  the store's payloads are encoded: pass --codec MODULE:FACTORY (or set "
                 "$DURO_CODEC) with the chain, and its keys, that wrote them")
        return EXIT_FAILED
    except DuroError as exc:
        err.line(f"duro: error: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    except Exception as exc:
        # A bug, or input nothing above foresaw: still one line (the operator's
        # terminal is no place for a traceback unless asked), and a failing exit.
        if verbose:
            err.line(traceback.format_exc().rstrip())
        err.line(f"duro: error: unexpected {type(exc).__name__}: {exc} (--verbose shows "
                 "the traceback)")
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``duro`` console script."""
    sys.exit(run_cli(argv))
