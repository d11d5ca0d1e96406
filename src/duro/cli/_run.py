"""``duro run`` and ``duro worker``: the commands that execute workflows."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from duro._queues import queue_name
from duro.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    Style,
    codec,
    namespace,
)
from duro.cli._format import dumps, duration, progress_line
from duro.cli._load import import_target, load_workflow, parse_call_args, workflows_in
from duro.cli._telemetry import tracing
from duro.client import Client, Engine, RunInfo, WorkflowHandle
from duro.errors import DuroError, InvalidArgumentError, RunNotFoundError
from duro.store import RunStatus
from duro.store._url import redact
from duro.workflow import Workflow, registered_workflows

if TYPE_CHECKING:
    from duro.metrics import Metrics

log = logging.getLogger("duro.cli")

__all__ = ["RunState", "run_command", "worker_command"]

POLL_INTERVAL = 0.15
"""Seconds between looks at the history while ``duro run`` waits."""


@dataclass
class RunState:
    """What ``duro run`` knows so far, for the message shown when it is interrupted."""

    db: str | None = None
    target: str = ""
    workflow_id: str | None = None
    extra: list[str] = field(default_factory=list)

    def resume_command(self) -> str:
        """The command that attaches to the same run again."""
        parts = ["duro"]
        if self.db is not None:
            parts += ["--db", redact(self.db)]  # the password stays out of terminals
        parts += ["run", self.target, "--id", self.workflow_id or "?"]
        return shlex.join(parts)


async def _describe(engine: Client, workflow_id: str) -> RunInfo | None:
    try:
        return await engine.get_handle(workflow_id).describe()
    except RunNotFoundError:
        return None


async def run_command(
    args: argparse.Namespace, url: str, state: RunState, out: Style, err: Style
) -> int:
    """Start (or attach to) a run with an embedded worker, show its progress, report."""
    wf = load_workflow(args.target)
    call_args, call_kwargs = parse_call_args(args.args, args.json_args)
    try:
        wf.signature.bind(*call_args, **call_kwargs)
        bad_args = None
    except TypeError as exc:
        bad_args = CliError(f"wrong arguments for workflow {wf.name!r}: {exc}", EXIT_USAGE)
    if bad_args is not None and args.id is None:
        raise bad_args
    quiet: bool = args.quiet
    # The embedded worker serves this workflow, and the other workflows of its module so
    # that its child workflows run too; `duro run` is not a general worker: it serves
    # their queues and those given with --queue, and leaves steps routed to any other
    # queue (a "gpu" step) to that queue's workers.
    served = _served(wf)
    try:
        given = {queue_name(q, "--queue") for q in getattr(args, "queues", None) or ()}
    except InvalidArgumentError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    queues = sorted({w.queue for w in served} | given)
    async with Engine(url, worker=True, workflows=served, codec=codec(),
                      queues=queues) as worker:
        # The run is started and watched in the command's namespace; the embedded worker
        # runs it (workers run every namespace's runs).
        engine = worker.with_namespace(namespace())
        before = await _describe(engine, args.id) if args.id else None
        handle: WorkflowHandle[Any]
        if before is not None:
            # Attach to the run of this id (resuming it if nobody runs it): it already
            # has its arguments, so none are needed to continue it.
            if before.workflow_name != wf.name:
                raise CliError(
                    f"workflow id {args.id!r} belongs to a run of workflow "
                    f"{before.workflow_name!r}, not {wf.name!r}", EXIT_USAGE)
            handle = engine.get_handle(before.workflow_id, before.run_id)
        elif bad_args is not None:
            raise bad_args
        else:
            try:
                handle = await engine.start(wf, *call_args, id=args.id, **call_kwargs)
            except TypeError as exc:  # SerializationError: arguments JSON cannot carry
                raise CliError(str(exc), EXIT_USAGE) from None
        state.workflow_id = handle.workflow_id
        if not quiet:
            err.line(_header(wf.name, handle, before, bool(call_args or call_kwargs), err))
        info = await _watch(engine, handle, None if quiet else err, args.timeout, state)
    return _report(info, args, out, err)


def _served(wf: Workflow[Any, Any]) -> list[Workflow[Any, Any]]:
    module = sys.modules.get(wf.fn.__module__)
    others = workflows_in(module) if module is not None else []
    return [wf, *(w for w in others if w.name != wf.name)]


def _header(name: str, handle: WorkflowHandle[Any], before: RunInfo | None, has_args: bool,
            err: Style) -> str:
    ids = f"{handle.workflow_id} (run {handle.run_id})"
    if before is None:
        return f"{err.sym('▶', 'bold')} started {name} as {ids}"
    if before.status.is_terminal:
        return f"{err.sym('▶', 'bold')} {ids} already {before.status.value}; its outcome:"
    note = "; it runs with its recorded arguments" if has_args else ""
    return (f"{err.sym('▶', 'bold')} resuming {name} {ids}, {before.history_length} events "
            f"recorded{note}")


async def _watch(engine: Client, handle: WorkflowHandle[Any], err: Style | None,
                 timeout: float | None, state: RunState) -> RunInfo:
    """Print each new event until the run ends or parks; follow continue-as-new."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 1  # run_started is the header's job
    while True:
        info = await handle.describe()
        if info.history_length > seen:
            events = await handle.history()
            for ev in events[seen:]:
                line = progress_line(ev, err) if err is not None else None
                if line is not None and err is not None:
                    err.line(line)
            seen = len(events)
        if info.status == RunStatus.CONTINUED_AS_NEW:
            successor = await _successor(engine, info)
            if successor is not None:
                if err is not None:
                    err.line(f"{err.sym('▶', 'bold')} new run {successor.run_id} of "
                             f"{successor.workflow_id}")
                handle = engine.get_handle(successor.workflow_id, successor.run_id)
                seen = 1
                continue
        if info.status.is_terminal or info.status == RunStatus.PARKED:
            return info
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError(
                f"run {info.workflow_id!r} is still {info.status.value} after {timeout:g}s; "
                "it is durable and goes on when a worker runs it: wait for it with "
                f"`{state.resume_command()}`, or serve it with `duro worker MODULE`",
                EXIT_TIMEOUT,
            )
        await asyncio.sleep(POLL_INTERVAL)


async def _successor(engine: Client, info: RunInfo) -> RunInfo | None:
    """The run that continues ``info`` (continue-as-new), else the latest of its id."""
    for run in await engine.list(name=info.workflow_name, limit=200):
        if run.workflow_id == info.workflow_id and run.origin_run_id == info.run_id:
            return run
    latest = await engine.get_handle(info.workflow_id).describe()
    return latest if latest.run_id != info.run_id else None


def _report(info: RunInfo, args: argparse.Namespace, out: Style, err: Style) -> int:
    wid = info.workflow_id
    took = (f" in {duration((info.closed_at - info.created_at).total_seconds())}"
            if info.closed_at is not None else "")
    verbose: bool = getattr(args, "verbose", False)
    status = info.status
    if status == RunStatus.COMPLETED:
        if not args.quiet:
            err.line(f"{err.sym('✓', 'green')} {wid} completed{took}")
        out.line(dumps(info.result_json, ascii=not out.unicode))
        return EXIT_OK
    error = info.error
    if status in (RunStatus.CANCELLED, RunStatus.TERMINATED):
        reason = f": {error.message}" if status == RunStatus.TERMINATED and error else ""
        err.line(f"{err.sym('⊘', 'yellow')} {wid} was {status.value}{took}{reason}")
        return EXIT_STOPPED
    if status == RunStatus.PARKED:
        err.line(f"{err.sym('✗', 'red')} {wid} is parked: {error}")
        err.line("  the run is kept as it is; it resumes when a worker with fixed code starts "
                 "(fix the code, then run the same command with --id again)")
        return EXIT_FAILED
    if status == RunStatus.TIMED_OUT:
        err.line(f"{err.sym('✗', 'red')} {wid} timed out{took}: "
                 f"{error.message if error else 'its execution timeout passed'}")
        return EXIT_FAILED
    err.line(f"{err.sym('✗', 'red')} {wid} failed{took}: {error}")
    links = error.chain() if error is not None else []
    for i, link in enumerate(links):
        if i:
            err.line(f"  caused by {link}")
        if verbose and link.traceback:
            err.line(link.traceback.rstrip())
    if not verbose and any(link.traceback for link in links):
        err.line("  (--verbose shows the traceback)")
    return EXIT_FAILED


_METRICS_REFRESH = 5.0
"""Seconds between two reads of a worker's gauges (queue depths: a store read)."""


def _metrics(args: argparse.Namespace) -> Metrics | None:
    if getattr(args, "metrics_port", None) is None:
        return None
    from duro.metrics import Metrics

    try:
        return Metrics()
    except InvalidArgumentError as exc:
        raise CliError(f"--metrics-port: {exc}", EXIT_USAGE) from None


def _serve_metrics(args: argparse.Namespace, metrics: Metrics) -> str:
    """Serve the registry on its own thread (prometheus_client's server); its address."""
    import prometheus_client

    from duro.metrics import PrometheusRecorder

    assert isinstance(metrics.recorder, PrometheusRecorder)
    try:
        server, _ = prometheus_client.start_http_server(
            args.metrics_port, addr=args.metrics_host, registry=metrics.recorder.registry)
    except OSError as exc:
        raise CliError(f"could not serve metrics on {args.metrics_host}:"
                       f"{args.metrics_port}: {exc}", EXIT_USAGE) from None
    port = server.server_address[1]
    return f"{args.metrics_host}:{port}"


async def _refresh_metrics(metrics: Metrics, engine: Engine) -> None:
    while True:
        try:
            await metrics.refresh(engine)
        except DuroError as exc:  # the store is away: the gauges keep their last values
            log.debug("metrics not refreshed: %s", exc)
        await asyncio.sleep(_METRICS_REFRESH)


async def worker_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Serve every workflow of the given modules until SIGINT/SIGTERM."""
    for target in args.modules:
        import_target(target)
    # duro's own (the operation wrapper of docs/rpc.md) are always there: the modules
    # must bring at least one of their own.
    if all(wf.fn.__module__.startswith("duro.") for wf in registered_workflows().values()):
        raise CliError(f"no @duro.workflow found in {', '.join(args.modules)}", EXIT_USAGE)
    from duro.worker import tune_gc
    from duro.worker._retention import RetentionPolicy

    tune_gc()  # this process is the worker: the modules are imported, freeze them

    days = getattr(args, "retention_days", None)
    retention = RetentionPolicy(keep=days * 86400) if days else None
    metrics = _metrics(args)
    with tracing(getattr(args, "tracing", None)) as traced:
        hooks = [h for h in (traced, metrics) if h is not None]
        return await _work(args, url, out, retention, metrics, hooks)


async def _work(args: argparse.Namespace, url: str, out: Style, retention: Any,
                metrics: Metrics | None, hooks: list[Any]) -> int:
    async with Engine(url, worker=True, max_active=args.concurrency, codec=codec(),
                      queues=getattr(args, "queues", None), retention=retention,
                      max_recoveries=getattr(args, "max_recoveries", 10),
                      max_child_depth=getattr(args, "max_child_depth", 100),
                      interceptors=hooks) as engine:
        assert engine.worker is not None
        names = engine.worker.names
        served = ""
        refreshing: asyncio.Task[None] | None = None
        if metrics is not None:
            served = f", metrics on http://{_serve_metrics(args, metrics)}/metrics"
            refreshing = asyncio.create_task(_refresh_metrics(metrics, engine))
        out.line(f"duro worker ready: pid {os.getpid()}, {len(names)} workflow(s): "
                 f"{', '.join(names)} (concurrency {args.concurrency}, db {redact(url)}"
                 f"{served})")
        try:
            await engine.run_forever()
        finally:
            if refreshing is not None:
                refreshing.cancel()
            grace = getattr(args, "grace", 10.0)
            out.line(f"duro worker stopping: finishing running steps (up to {grace:g}s), "
                     "handing runs back")
            await engine.worker.drain(grace)
    return EXIT_OK  # pragma: no cover - run_forever only ends by cancellation
