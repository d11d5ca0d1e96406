"""``duro ls``, ``show``, ``history``, ``cancel`` and ``terminate``: client-only commands."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson

from duro.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STORE,
    CliError,
    Style,
    codec,
    namespace,
    stderr,
    token,
)
from duro.cli._format import (
    dumps,
    duration,
    history_row,
    local_time,
    status_text,
    table,
)
from duro.client import Client, RunInfo, summarize_steps
from duro.client._listing import MAX_PAGE_SIZE
from duro.client._url import is_remote
from duro.errors import RunNotFoundError
from duro.store import RunStatus, backend_for

__all__ = ["attribute", "cancel_command", "history_command", "ls_command", "show_command",
           "terminate_command", "when"]


@asynccontextmanager
async def client(url: str, *, read_only: bool = False) -> AsyncIterator[Client]:
    """A client on an existing database (never creates one), or through a server
    (``--url``).

    Args:
        url: The database's URL or the server's.
        read_only: The command only reads: the store is opened read-only (no writer, no
            migration, no file created; a user who may only read the database can run
            it), where the backend supports it.

    Raises:
        CliError: (exit 4) the database file does not exist.
    """
    if is_remote(url):
        async with Client(url, token=token()) as remote:
            yield remote
        return
    backend = backend_for(url)
    try:
        store = backend.open(url, read_only=True) if read_only else backend.open(url)
    except TypeError:  # a third-party backend without the option: as before
        store = backend.open(url)
    if (missing := backend.missing(url)) is not None:
        raise CliError(f"{missing} (pass --db URL or set DURO_DB)", EXIT_STORE)
    async with Client(url, store=store, codec=codec(), namespace=namespace()) as engine:
        yield engine


async def _describe(engine: Client, workflow_id: str) -> RunInfo:
    try:
        return await engine.get_handle(workflow_id).describe()
    except RunNotFoundError:
        raise CliError(f"no run with workflow id {workflow_id!r}", EXIT_FAILED) from None


def when(text: str) -> float | datetime:
    """An argparse type: a time as epoch seconds or ISO 8601 with a UTC offset."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither ISO 8601 (2024-05-01T12:00Z) nor epoch seconds") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add Z or +02:00)")
    return at


def attribute(text: str) -> tuple[str, Any]:
    """An argparse type: ``KEY=VALUE``, the value JSON if it parses to a string, number
    or bool, else the text itself (as ``duro run`` reads arguments)."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return key, raw
    return key, value if isinstance(value, str | int | float | bool) else raw


async def ls_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """List runs, newest first: one page of at most ``--limit`` runs (fetched in pages
    of at most 10,000), and where the next page starts."""
    runs: list[RunInfo] = []
    cursor: str | None = args.cursor
    async with client(url, read_only=True) as engine:
        while True:
            page = await engine.list_page(
                status=args.status, name=args.name, created_after=args.created_after,
                created_before=args.created_before, id_prefix=args.id_prefix,
                search_attributes=dict(args.attrs or ()), cursor=cursor,
                page_size=min(MAX_PAGE_SIZE, args.limit - len(runs)))
            runs += page.runs
            cursor = page.next_cursor
            if cursor is None or len(runs) >= args.limit:
                break
    if args.json:
        listed = [r.to_json() for r in runs]
        paged = args.page or args.cursor is not None
        out.line(dumps({"runs": listed, "next_cursor": cursor} if paged else listed,
                       ascii=not out.unicode))
        return EXIT_OK
    if cursor is not None:
        stderr().line(f"more runs: add --cursor {cursor}")
    if not runs:
        out.line("no runs")
        return EXIT_OK
    rows = []
    every = namespace() is None  # --all-namespaces: say whose each run is
    for r in runs:
        took = (duration((r.closed_at - r.created_at).total_seconds())
                if r.closed_at is not None else "-")
        rows.append([*([r.namespace] if every else []), r.workflow_id, r.workflow_name,
                     r.status.value, local_time(r.created_at), local_time(r.updated_at), took])
    headers = ["WORKFLOW ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED", "DURATION"]
    for line in table(["NAMESPACE", *headers] if every else headers, rows, out,
                      status_column=3 if every else 2):
        out.line(line)
    _warn_damaged(runs)
    return EXIT_OK


def _warn_damaged(runs: list[RunInfo]) -> None:
    """Say on stderr which listed runs have a damaged row (shown as ``corrupt``)."""
    for r in runs:
        if r.damage:
            stderr().line(f"warning: run {r.workflow_id!r} ({r.run_id}) has a damaged row "
                          f"({r.damage}); duro never runs or changes it")


async def show_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Describe one run and its steps."""
    async with client(url, read_only=True) as engine:
        info = await _describe(engine, args.id)
        handle = engine.get_handle(info.workflow_id, info.run_id)
        events = await handle.history()
        children: list[RunInfo] | None = await handle.children()
        parent = await _run_by_id(engine, info.parent_run_id)
        origin = await _run_by_id(engine, info.origin_run_id)
    steps = summarize_steps(events)
    relation = _relation(info, origin)
    if args.json:
        described = {
            **info.to_json(),
            "parent": None if parent is None else _link_json(parent),
            "origin": None if origin is None else {**_link_json(origin), "relation": relation},
            "children": None if children is None else [_link_json(c) for c in children],
            "steps": [s.to_json() for s in steps],
        }
        out.line(dumps(described, ascii=not out.unicode))
        return EXIT_OK
    verbose: bool = getattr(args, "verbose", False)
    fields: list[tuple[str, str]] = [
        ("workflow id", info.workflow_id),
        ("run id", info.run_id),
        ("workflow", info.workflow_name),
        ("status", status_text(info.status.value, out)),
        ("created", local_time(info.created_at)),
    ]
    if info.damage:
        fields.append(("damage", f"{info.damage} (the stored row is damaged: duro never "
                                 f"runs or changes it; repair or delete it)"))
    if info.parent_run_id is not None:
        fields.append(("parent", _link_text(parent, info.parent_run_id)))
    if info.origin_run_id is not None:
        fields.append(("origin", f"{relation} {_link_text(origin, info.origin_run_id)}"))
    if info.closed_at is not None:
        took = duration((info.closed_at - info.created_at).total_seconds())
        fields.append(("closed", f"{local_time(info.closed_at)} (took {took})"))
    else:
        fields.append(("updated", local_time(info.updated_at)))
        if info.wake_at is not None and info.status == RunStatus.SUSPENDED:
            fields.append(("wakes at", local_time(info.wake_at)))
        if info.owner:
            fields.append(("worker", info.owner))
    fields.append(("events", str(info.history_length)))
    if info.search_attributes:
        fields.append(("attributes", " ".join(
            f"{k}={dumps(v, ascii=not out.unicode)}"
            for k, v in sorted(info.search_attributes.items()))))
    if info.status == RunStatus.COMPLETED:
        fields.append(("result", dumps(info.result_json, ascii=not out.unicode)))
    elif info.error is not None and info.status != RunStatus.CANCELLED:
        label = {RunStatus.TERMINATED: "reason", RunStatus.PARKED: "parked"}.get(
            info.status, "error")
        text = info.error.message if info.status == RunStatus.TERMINATED else str(info.error)
        fields.append((label, text))
        if verbose and info.error.traceback:
            fields.append(("traceback", info.error.traceback.rstrip()))
        for cause in info.error.chain()[1:]:  # the step's (the child's) own error...
            fields.append(("caused by", str(cause)))
            if verbose and cause.traceback:
                fields.append(("traceback", cause.traceback.rstrip()))
    for label, value in fields:
        first, *rest = value.splitlines() or [""]
        out.line(f"{label:<12} {first}")
        for more in rest:
            out.line(f"{'':<12} {more}")
    if info.status == RunStatus.FAILED and info.error and info.error.traceback and not verbose:
        out.line(f"{'':<12} (--verbose shows the traceback)")
    if children:
        out.line("")
        out.line("children")
        rows = [[c.workflow_id, c.workflow_name, c.status.value, c.run_id] for c in children]
        for line in table(["WORKFLOW ID", "WORKFLOW", "STATUS", "RUN ID"], rows, out,
                          status_column=2):
            out.line("  " + line)
    out.line("")
    if not steps:
        out.line("no steps")
        return EXIT_OK
    out.line("steps")
    rows = [[f"#{s.op}", s.name, s.status, str(s.attempts), duration(s.duration),
             s.error or ""] for s in steps]
    for line in table(["OP", "NAME", "STATUS", "ATTEMPTS", "DURATION", "ERROR"], rows, out,
                      status_column=2):
        out.line("  " + line)
    return EXIT_OK


async def _run_by_id(engine: Client, run_id: str | None) -> RunInfo | None:
    if run_id is None:
        return None
    try:
        return await engine.get_handle(run_id, run_id).describe()
    except RunNotFoundError:
        return None


def _relation(info: RunInfo, origin: RunInfo | None) -> str:
    """How a run came from its origin run (the store keeps the link, not the reason)."""
    if origin is None:
        return "made from"
    if origin.workflow_id != info.workflow_id:
        return "forked from"
    if origin.status == RunStatus.CONTINUED_AS_NEW:
        return "continued from"
    return "retried or reset from"


def _link_text(run: RunInfo | None, run_id: str) -> str:
    if run is None:
        return f"run {run_id} (no longer in the store)"
    return f"{run.workflow_id} (run {run.run_id}, {run.workflow_name}, {run.status.value})"


def _link_json(run: RunInfo) -> dict[str, str]:
    return {"workflow_id": run.workflow_id, "run_id": run.run_id,
            "workflow_name": run.workflow_name, "status": run.status.value}


async def history_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Print a run's history, one event a line."""
    async with client(url, read_only=True) as engine:
        info = await _describe(engine, args.id)
        events = await engine.get_handle(info.workflow_id, info.run_id).history()
    if args.json:
        out.line(dumps([e.to_json() for e in events], ascii=not out.unicode))
        return EXIT_OK
    for line in table(["SEQ", "TIME", "KIND", "OP", "NAME", "DETAILS"],
                      [history_row(e) for e in events], out):
        out.line(line)
    return EXIT_OK


async def _not_live(engine: Client, workflow_id: str, what: str) -> CliError:
    info = await _describe(engine, workflow_id)
    return CliError(f"run {workflow_id!r} has already ended ({info.status.value}); "
                    f"nothing to {what}", EXIT_FAILED)


async def cancel_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Ask a live run to cancel."""
    async with client(url) as engine:
        try:
            await engine.cancel(args.id)
        except RunNotFoundError:
            raise await _not_live(engine, args.id, "cancel") from None
        info = await _describe(engine, args.id)
    out.line(f"cancel requested for {info.workflow_id} (run {info.run_id}): the workflow gets "
             "asyncio.CancelledError at its next await, in the worker that runs it")
    return EXIT_OK


async def terminate_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Stop a live run at once."""
    async with client(url) as engine:
        try:
            await engine.terminate(args.id, reason=args.reason)
        except RunNotFoundError:
            raise await _not_live(engine, args.id, "terminate") from None
        info = await _describe(engine, args.id)
    out.line(f"terminated {info.workflow_id} (run {info.run_id}): {args.reason}")
    return EXIT_OK
