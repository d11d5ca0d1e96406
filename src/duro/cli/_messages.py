"""``duro signal``, ``query``, ``update`` and ``state``: talking to a run from outside.

These commands are clients: the run itself is executed by a worker (``duro worker``,
``duro run``, or an application's embedded engine), which receives the signals and
handles the updates; queries are answered here, from a replay of the run's history.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from duro._history import EventKind
from duro.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    Style,
    positive_number,
    stderr,
)
from duro.cli._format import dumps, short_json, table
from duro.cli._inspect import client
from duro.cli._load import import_target, parse_call_args
from duro.client import Client, RunInfo
from duro.client._url import is_remote
from duro.errors import (
    QueryError,
    RunNotFoundError,
    UpdateFailedError,
    UpdateRejectedError,
)
from duro.store import RunStatus
from duro.workflow import registered_workflows

__all__ = ["add_commands", "print_value", "resolve"]

Command = Callable[[str, str], argparse.ArgumentParser]

UPDATE_HINT_AFTER = 5.0
"""Seconds ``duro update`` waits in silence before saying what it waits for."""

_MISSING: Any = object()


def add_commands(command: Command) -> None:
    """Add ``signal``, ``query``, ``update`` and ``state`` to the ``duro`` parser."""
    value_help = "JSON if it parses, else a string"
    signal = command("signal", "send a signal to a live run (the worker running it gets it)")
    signal.add_argument("id", metavar="ID", help="workflow id (or run id)")
    signal.add_argument("name", metavar="NAME", help="the signal's name")
    signal.add_argument("payload", nargs="?", metavar="PAYLOAD",
                        help=f"the signal's payload: {value_help} (default: null)")
    signal.set_defaults(handler=signal_command)

    query = command("query", "ask a run a question, answered by its query handler; "
                             "needs the workflow's code (--module)")
    query.add_argument("id", metavar="ID", help="workflow id (or run id)")
    query.add_argument("name", metavar="NAME", help="the query's name")
    query.add_argument("args", nargs="*", metavar="ARG", help=f"its arguments: {value_help}")
    query.add_argument("-m", "--module", action="append", default=[], metavar="MODULE",
                       help="import this module first (dotted name or .py path; repeatable): "
                            "the one that defines the workflow")
    query.add_argument("--json", action="store_true",
                       help="print the answer as JSON even when it is a string")
    query.set_defaults(handler=query_command)

    update = command("update", "send an update to a live run and wait for the result of "
                               "its handler (a worker handles it)")
    update.add_argument("id", metavar="ID", help="workflow id (or run id)")
    update.add_argument("name", metavar="NAME", help="the update's name")
    update.add_argument("args", nargs="*", metavar="ARG", help=f"its arguments: {value_help}")
    update.add_argument("--id", dest="update_id", metavar="UPDATE_ID",
                        help="the update's id (default: a new one); sending the same id again "
                             "does not apply it twice and returns its outcome")
    update.add_argument("--timeout", type=positive_number, metavar="S",
                        help="stop waiting after S seconds (exit 124; the update stays queued)")
    update.add_argument("--json", action="store_true",
                        help="print the result as JSON even when it is a string")
    update.set_defaults(handler=update_command)

    state = command("state", "print the values a run published with duro.set_state")
    state.add_argument("id", metavar="ID", help="workflow id (or run id)")
    state.add_argument("key", nargs="?", metavar="KEY", help="only this key's value")
    state.add_argument("--json", action="store_true", help="print JSON")
    state.set_defaults(handler=state_command)


def print_value(value: Any, out: Style, *, as_json: bool) -> None:
    """A value as indented JSON; a string as it is unless ``as_json`` (like ``jq -r``)."""
    if isinstance(value, str) and not as_json:
        out.line(value)
    else:
        out.line(dumps(value, ascii=not out.unicode))


async def resolve(engine: Client, run: str) -> RunInfo:
    """The run a workflow id (its latest run) or a run id names.

    Raises:
        CliError: (exit 1) no such run.
    """
    try:
        return await engine.get_handle(run).describe()
    except RunNotFoundError:
        raise CliError(f"no run with workflow id {run!r}", EXIT_FAILED) from None


def _ended(info: RunInfo, what: str) -> CliError:
    return CliError(f"run {info.workflow_id!r} has already ended ({info.status.value}); "
                    f"nothing to {what}", EXIT_FAILED)


def _values(texts: list[str]) -> list[Any]:
    values, _ = parse_call_args(texts, None)
    return values


async def signal_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Send a signal to a live run."""
    payload = None if args.payload is None else _values([args.payload])[0]
    async with client(url) as engine:
        info = await resolve(engine, args.id)
        try:
            await engine.signal(info.workflow_id, args.name, payload)
        except RunNotFoundError:
            raise _ended(info, "signal") from None
        info = await resolve(engine, info.workflow_id)
    out.line(f"signal {args.name!r} sent to {info.workflow_id} (run {info.run_id}, "
             f"{info.status.value})")
    return EXIT_OK


async def query_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Answer a query from a replay of the run's history, in this process."""
    for module in args.module:
        import_target(module)
    query_args = _values(args.args)
    async with client(url) as engine:
        info = await resolve(engine, args.id)
        # Through a server, its worker answers from its code.
        if not is_remote(url) and info.workflow_name not in registered_workflows():
            given = f" ({', '.join(args.module)} does not define it)" if args.module else ""
            raise CliError(
                f"run {info.workflow_id!r} is a run of workflow {info.workflow_name!r}, which "
                f"is not imported here{given}: pass --module MODULE, the module that "
                "defines it (queries are answered from its code)", EXIT_USAGE)
        try:
            value = await engine.get_handle(info.workflow_id, info.run_id).query(
                args.name, *query_args)
        except QueryError as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
    print_value(value, out, as_json=args.json)
    return EXIT_OK


async def update_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Send an update and wait for its outcome."""
    update_args = _values(args.args)
    update_id: str = args.update_id or str(uuid.uuid4())
    timeout: float | None = args.timeout
    async with client(url) as engine:
        info = await resolve(engine, args.id)
        handle = engine.get_handle(info.workflow_id)
        task = asyncio.ensure_future(handle.update(args.name, *update_args, id=update_id,
                                                   timeout=timeout))
        try:
            done, _ = await asyncio.wait({task}, timeout=UPDATE_HINT_AFTER)
            if not done:
                stderr().line(
                    f"waiting for the worker running {info.workflow_id!r} to handle update "
                    f"{args.name!r} (id {update_id}); is a worker running?")
            result = await task
        except RunNotFoundError:
            raise _ended(await resolve(engine, info.workflow_id), "update") from None
        except UpdateRejectedError as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
        except UpdateFailedError as exc:
            raise CliError(str(exc), EXIT_FAILED, detail=exc.cause.traceback) from None
        except TimeoutError:
            raise CliError(
                f"update {args.name!r} had no outcome within {timeout:g}s; it stays queued "
                f"and the worker running {info.workflow_id!r} handles it when it can: wait "
                f"for its outcome with `duro update {info.workflow_id} {args.name} --id "
                f"{update_id}`", EXIT_TIMEOUT) from None
        finally:
            task.cancel()
    print_value(result, out, as_json=args.json)
    return EXIT_OK


async def _published_keys(engine: Client, info: RunInfo) -> list[str]:
    """The keys the run published, in order of first publication: from the ``state_set``
    events of its history and of the runs it continues (continue-as-new carries the
    published state over, not the history)."""
    chain = [info]
    seen = {info.run_id}
    while chain[-1].origin_run_id and chain[-1].origin_run_id not in seen:
        origin_id = chain[-1].origin_run_id
        try:
            origin = await engine.get_handle(origin_id, origin_id).describe()
        except RunNotFoundError:
            break
        if (origin.status != RunStatus.CONTINUED_AS_NEW
                or origin.workflow_id != chain[-1].workflow_id):
            break
        chain.append(origin)
        seen.add(origin_id)
    keys: dict[str, None] = {}
    for run in reversed(chain):
        for ev in await engine.get_handle(run.workflow_id, run.run_id).history():
            if ev.kind == EventKind.STATE_SET and ev.name is not None:
                keys.setdefault(ev.name)
    return list(keys)


async def state_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Print one published value, or all of them."""
    async with client(url) as engine:
        info = await resolve(engine, args.id)
        handle = engine.get_handle(info.workflow_id, info.run_id)
        keys = [args.key] if args.key is not None else await _published_keys(engine, info)
        values = {}
        for key in keys:
            value = await handle.get_state(key, default=_MISSING)
            if value is not _MISSING:
                values[key] = value
    if args.key is not None:
        if args.key not in values:
            raise CliError(f"run {info.workflow_id!r} (run {info.run_id}) has not published "
                           f"{args.key!r}", EXIT_FAILED)
        print_value(values[args.key], out, as_json=args.json)
        return EXIT_OK
    if args.json:
        out.line(dumps(values, ascii=not out.unicode))
    elif not values:
        out.line("no published state")
    else:
        rows = [[key, short_json(value, width=100)] for key, value in values.items()]
        for line in table(["KEY", "VALUE"], rows, out):
            out.line(line)
    return EXIT_OK
