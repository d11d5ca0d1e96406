"""``duro export runs|events``: the runs of a window, or their histories, as JSON lines,
CSV or Parquet (extra ``duro[parquet]``) for BI tools and notebooks."""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from duro.cli._common import EXIT_OK, EXIT_USAGE, CliError, Style, stderr
from duro.cli._inspect import client
from duro.cli._messages import Command
from duro.cli._schedules import parse_duration
from duro.client import Client, Event, RunInfo
from duro.store import RunStatus

__all__ = ["EVENT_COLUMNS", "RUN_COLUMNS", "add_commands"]

RUN_COLUMNS = ("workflow_id", "run_id", "namespace", "workflow_name", "status", "created_at",
               "updated_at", "closed_at", "duration", "wake_at", "owner", "history_length",
               "result", "error_type", "error_message", "error", "parent_run_id",
               "origin_run_id", "headers", "search_attributes")
EVENT_COLUMNS = ("workflow_id", "run_id", "workflow_name", "seq", "kind", "time", "op",
                 "name", "data", "meta", "corrupt")
_NESTED = frozenset({"result", "error", "headers", "search_attributes", "data", "meta"})
"""Columns holding JSON values: as they are in JSON lines, as JSON text in CSV and
Parquet (one fixed column type, whatever the payload)."""
_TIMES = frozenset({"created_at", "updated_at", "closed_at", "wake_at", "time"})
_INTS = frozenset({"history_length", "seq", "op"})
_BATCH = 5000
"""Rows per Parquet row group (what is held in memory at once)."""


def add_commands(command: Command) -> None:
    """Add ``export`` to the ``duro`` parser."""
    export = command("export", "the runs of a window (one row each) or their histories (one "
                               "row per event), as JSON lines, CSV or Parquet")
    export.add_argument("what", choices=("runs", "events"))
    export.add_argument("--since", type=parse_duration, metavar="DURATION",
                        help="only runs created that long ago or later: 7d, 12h, 30m, 90 "
                             "(seconds); default: every run")
    export.add_argument("--workflow", metavar="NAME", help="only runs of this workflow name")
    export.add_argument("--status", choices=[s.value for s in RunStatus],
                        help="only runs with this status")
    export.add_argument("--format", choices=("jsonl", "csv", "parquet"), default="jsonl",
                        help="jsonl (default), csv, or parquet (needs -o and "
                             "pip install 'duro[parquet]')")
    export.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE (replaced whole once the export is complete; "
                             "default: stdout)")
    export.set_defaults(handler=export_command)


def _run_row(run: RunInfo) -> dict[str, Any]:
    raw = run.to_json()
    row = {column: raw.get(column) for column in RUN_COLUMNS}
    row["error_type"] = None if run.error is None else run.error.type
    row["error_message"] = None if run.error is None else run.error.message
    return row


def _event_row(run: RunInfo, event: Event) -> dict[str, Any]:
    raw = event.to_json()
    return {"workflow_id": run.workflow_id, "run_id": run.run_id,
            "workflow_name": run.workflow_name,
            **{column: raw.get(column) for column in EVENT_COLUMNS[3:]}}


async def _rows(engine: Client, args: argparse.Namespace) -> AsyncIterator[dict[str, Any]]:
    since = None if args.since is None else time.time() - args.since
    runs = engine.iter_runs(status=args.status, name=args.workflow, created_after=since,
                            page_size=500)
    async for run in runs:
        if args.what == "runs":
            yield _run_row(run)
            continue
        for event in await engine.get_handle(run.workflow_id, run.run_id).history():
            yield _event_row(run, event)


def _text(value: Any, column: str) -> Any:
    """A value for a flat column: JSON text for nested values."""
    if column in _NESTED:
        return None if value is None else orjson.dumps(value).decode()
    return value


@contextlib.contextmanager
def _target(path: str | None, binary: bool) -> Iterator[IO[Any]]:
    """stdout, or ``path`` written through a temporary file that replaces it only once
    the export is complete (a failed export leaves the old file, or none)."""
    if path is None:
        yield sys.stdout.buffer if binary else sys.stdout
        return
    final = Path(path)
    if not final.parent.is_dir():
        raise CliError(f"cannot write {path}: no directory {str(final.parent)!r}", EXIT_USAGE)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb" if binary else "w", newline="" if not binary else None,
                  encoding=None if binary else "utf-8") as f:
            yield f
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


async def export_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Write the rows."""
    columns = RUN_COLUMNS if args.what == "runs" else EVENT_COLUMNS
    write: Callable[[IO[Any], AsyncIterator[dict[str, Any]]], Any]
    if args.format == "parquet":
        if args.output is None:
            raise CliError("--format parquet needs -o FILE (it is not text)", EXIT_USAGE)
        write = _parquet_writer(columns)
    elif args.format == "csv":
        write = _csv_writer(columns)
    else:
        write = _jsonl
    async with client(url) as engine:
        with _target(args.output, binary=args.format != "csv") as f:
            count = await write(f, _rows(engine, args))
    if args.output is None:
        (sys.stdout.buffer if args.format != "csv" else sys.stdout).flush()
    else:
        # The count on stderr: stdout stays free for the data when there is no -o.
        stderr().line(f"{count} {args.what if count != 1 else args.what[:-1]} written to "
                      f"{args.output}")
    return EXIT_OK


async def _jsonl(f: IO[bytes], rows: AsyncIterator[dict[str, Any]]) -> int:
    count = 0
    async for row in rows:
        f.write(orjson.dumps(row) + b"\n")
        count += 1
    return count


def _csv_writer(columns: tuple[str, ...]) -> Callable[[IO[str], AsyncIterator[dict[str, Any]]],
                                                       Any]:
    async def write(f: IO[str], rows: AsyncIterator[dict[str, Any]]) -> int:
        writer = csv.writer(f)
        writer.writerow(columns)
        count = 0
        async for row in rows:
            writer.writerow(["" if (v := _text(row[c], c)) is None else v for c in columns])
            count += 1
        return count

    return write


def _parquet_writer(columns: tuple[str, ...]) -> Callable[[IO[bytes],
                                                           AsyncIterator[dict[str, Any]]], Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise CliError("--format parquet needs pyarrow: pip install 'duro[parquet]'",
                       EXIT_USAGE) from None
    from duro.client._records import parse_time

    def kind(column: str) -> Any:
        if column in _TIMES:
            return pa.timestamp("us", tz="UTC")
        if column in _INTS:
            return pa.int64()
        return pa.float64() if column == "duration" else pa.string()

    schema = pa.schema([(c, kind(c)) for c in columns])

    def value(row: dict[str, Any], column: str) -> Any:
        v = row[column]
        return parse_time(v) if column in _TIMES and v is not None else _text(v, column)

    async def write(f: IO[bytes], rows: AsyncIterator[dict[str, Any]]) -> int:
        count = 0
        batch: list[dict[str, Any]] = []
        with pq.ParquetWriter(f, schema) as writer:
            async for row in rows:
                batch.append({c: value(row, c) for c in columns})
                if len(batch) >= _BATCH:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    count += len(batch)
                    batch.clear()
            if batch or count == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
        return count

    return write
