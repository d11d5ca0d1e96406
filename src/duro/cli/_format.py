"""Turning runs, events and steps into text lines and JSON for the terminal."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from duro._history import TERMINAL_KINDS, EventKind
from duro.cli._common import Style
from duro.client import Event
from duro.schedules._spec import known_zone

__all__ = [
    "dumps",
    "duration",
    "history_row",
    "local_time",
    "progress_line",
    "short_json",
    "status_text",
    "table",
    "zone_time",
]

_STATUS_COLORS = {"completed": "green", "failed": "red", "cancelled": "yellow",
                  "terminated": "yellow", "parked": "red", "running": "cyan",
                  "retrying": "yellow", "timed_out": "red", "continued_as_new": "dim",
                  "corrupt": "red"}


# Events whose data is an error payload (a child's end has its own line).
_ERRORS = frozenset({EventKind.RUN_FAILED, EventKind.RUN_CANCELLED, EventKind.RUN_TERMINATED,
                     EventKind.RUN_TIMED_OUT, EventKind.UPDATE_FAILED})

def dumps(value: Any, *, indent: int | None = 2, ascii: bool = False) -> str:
    """JSON for people and for ``jq``: non-ASCII kept unless ``ascii`` (for a stream that
    cannot carry it), anything odd as its string."""
    return json.dumps(value, indent=indent, ensure_ascii=ascii, default=str)


def local_time(when: dt.datetime | None, *, ms: bool = False) -> str:
    """A timestamp in the local time zone, ``-`` for none."""
    if when is None:
        return "-"
    local = when.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ms else local.strftime(
        "%Y-%m-%d %H:%M:%S")


def zone_time(when: dt.datetime | None, zone: str, *, utc: bool = False) -> str:
    """A timestamp on the wall clock of ``zone`` (an IANA name) with the zone's name, e.g.
    ``2026-12-07 02:00:00 Europe/Berlin``; in UTC (labelled) if ``utc``; ``-`` for none.

    A schedule's times read in its own zone: its cron expression is evaluated there, so
    ``0 2 * * *`` shows as 02:00 whatever the terminal's zone."""
    if when is None:
        return "-"
    # A zone this machine lacks reads in UTC, labelled (as ScheduleInfo.in_zone does).
    tz = None if utc or zone == "UTC" else known_zone(zone)
    if tz is None:
        return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{when.astimezone(tz).strftime('%Y-%m-%d %H:%M:%S')} {zone}"


def duration(seconds: float | None) -> str:
    """``12ms``, ``1.25s``, ``2m03s``, ``1h02m``, ``3d04h``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def short_json(value: Any, width: int = 60) -> str:
    """One-line JSON, cut to ``width`` characters."""
    text = dumps(value, indent=None)
    return text if len(text) <= width else text[: width - 1] + "…"


def _error_of(data: Any, *, short: bool = False) -> str:
    if not isinstance(data, dict):
        return "?"
    kind = str(data.get("type") or "Error")
    if short:
        kind = kind.rsplit(".", 1)[-1]
    message = str(data.get("message") or "")
    return f"{kind}: {message}" if message else kind


def _attempt(ev: Event) -> int:
    try:
        return int(ev.meta.get("attempt", 1))
    except (TypeError, ValueError):
        return 1


def _retry_in(ev: Event) -> float | None:
    retry_at = ev.meta.get("retry_at")
    if not isinstance(retry_at, (int, float)):
        return None
    return max(0.0, float(retry_at) - ev.time.timestamp())


def _secs(ev: Event) -> float | None:
    value = ev.meta.get("duration")
    return float(value) if isinstance(value, (int, float)) else None


def progress_line(ev: Event, style: Style) -> str | None:
    """The line ``duro run`` prints for a new event (None for the ones it reports
    otherwise: the start and the end of the run)."""
    op = f"(#{ev.op})" if ev.op is not None else ""
    if ev.kind == EventKind.STEP_COMPLETED:
        attempt = _attempt(ev)
        extra = f" (attempt {attempt})" if attempt > 1 else ""
        return (f"  {style.sym('✓', 'green')} step {ev.name} {op} "
                f"{style.paint(duration(_secs(ev)), 'dim')}{extra}")
    if ev.kind == EventKind.STEP_RETRYING:
        delay = _retry_in(ev)
        again = f"; retrying in {duration(delay)}" if delay is not None else "; retrying"
        return (f"  {style.sym('↻', 'yellow')} step {ev.name} {op} attempt {_attempt(ev)} "
                f"failed: {_error_of(ev.data, short=True)}{again}")
    if ev.kind == EventKind.STEP_FAILED:
        attempt = _attempt(ev)
        tries = f"after {attempt} attempts" if attempt > 1 else "(no retry)"
        return (f"  {style.sym('✗', 'red')} step {ev.name} {op} failed {tries}: "
                f"{_error_of(ev.data, short=True)}")
    if ev.kind == EventKind.TIMER_FIRED:
        return f"  {style.sym('⏲', 'cyan')} timer fired {op}".rstrip()
    if ev.kind == EventKind.MARKER:
        return f"  {style.sym('•')} marker {ev.name}"
    if ev.kind == EventKind.CANCEL_REQUESTED:
        return f"  {style.sym('⊘', 'yellow')} cancel requested"
    message = _message_line(ev, style, op)
    if message is not None:
        return message
    if ev.kind == EventKind.RUN_CONTINUED_AS_NEW:
        return (f"  {style.sym('↻', 'cyan')} continued as new with "
                f"{_call_args(ev.data)}")
    if ev.kind in TERMINAL_KINDS or ev.kind == EventKind.RUN_STARTED:
        return None  # the start and the end (timed out included): `duro run` reports them
    return f"  {style.sym('•')} {ev.kind} {ev.name or ''} {op}".rstrip()


def _message_line(ev: Event, style: Style, op: str) -> str | None:
    """Progress lines of signals, published state, updates and child workflows."""
    name = ev.name or "?"
    if ev.kind == EventKind.SIGNAL_RECEIVED:
        payload = "" if ev.data is None else f": {short_json(ev.data)}"
        return f"  {style.sym('•', 'cyan')} signal {name} received{payload}"
    if ev.kind == EventKind.STATE_SET:
        return f"  {style.sym('•')} state {name} = {short_json(ev.data)}"
    if ev.kind == EventKind.UPDATE_ACCEPTED:
        args = short_json(ev.data) if ev.data else "no arguments"
        return f"  {style.sym('•', 'cyan')} update {name} accepted ({args})"
    if ev.kind == EventKind.UPDATE_COMPLETED:
        return f"  {style.sym('✓', 'green')} update {name} completed: {short_json(ev.data)}"
    if ev.kind == EventKind.UPDATE_FAILED:
        return (f"  {style.sym('✗', 'red')} update {name} failed: "
                f"{_error_of(ev.data, short=True)}")
    if ev.kind == EventKind.CHILD_STARTED:
        child = ev.data.get("workflow_id") if isinstance(ev.data, dict) else None
        return f"  {style.sym('▶')} child {name} {op} started as {child or '?'}"
    if ev.kind == EventKind.CHILD_COMPLETED:
        return (f"  {style.sym('✓', 'green')} child {name} {op} completed: "
                f"{short_json(ev.data)}")
    if ev.kind == EventKind.CHILD_FAILED:
        status = str(ev.meta.get("status") or "failed").replace("_", " ")
        return (f"  {style.sym('✗', 'red')} child {name} {op} {status}: "
                f"{_error_of(ev.data, short=True)}")
    return None


def _call_args(data: Any) -> str:
    if not isinstance(data, dict):
        return short_json(data)
    args = data.get("args") or []
    kwargs = data.get("kwargs") or {}
    return "args " + short_json(args) + (f" kwargs {short_json(kwargs)}" if kwargs else "")


def _details(ev: Event) -> str:
    if ev.corrupt:
        return f"corrupt: {ev.corrupt}"
    if (ev.kind in (EventKind.RUN_STARTED, EventKind.RUN_CONTINUED_AS_NEW)
            and isinstance(ev.data, dict)):
        return _call_args(ev.data)
    if ev.kind == EventKind.STEP_COMPLETED:
        return f"{short_json(ev.data)}  (attempt {_attempt(ev)}, {duration(_secs(ev))})"
    if ev.kind in (EventKind.STEP_RETRYING, EventKind.STEP_FAILED):
        delay = _retry_in(ev)
        retry = f", retry in {duration(delay)}" if delay is not None else ""
        return f"{_error_of(ev.data)}  (attempt {_attempt(ev)}, {duration(_secs(ev))}{retry})"
    if ev.kind == EventKind.RUN_COMPLETED:
        return short_json(ev.data)
    if ev.kind in _ERRORS:
        return _error_of(ev.data) + _update_id(ev)
    if ev.kind == EventKind.CHILD_FAILED:
        return f"{_error_of(ev.data)}  ({ev.meta.get('status') or 'failed'})"
    if ev.kind == EventKind.CHILD_STARTED and isinstance(ev.data, dict):
        return f"workflow id {ev.data.get('workflow_id')} (run {ev.data.get('run_id')})"
    if ev.kind in (EventKind.UPDATE_ACCEPTED, EventKind.UPDATE_COMPLETED):
        return short_json(ev.data) + _update_id(ev)
    if ev.kind in (EventKind.EXTERNAL_SENT, EventKind.EXTERNAL_FAILED):
        to = f"{ev.meta.get('message')} to {ev.meta.get('workflow_id')}"
        if ev.kind == EventKind.EXTERNAL_FAILED:
            return f"{to}: {_error_of(ev.data)}"
        return f"{to} (run {ev.meta.get('run_id')})"
    if ev.kind == EventKind.APPROVAL_DECIDED:  # the audit trail: who, the verdict, why
        verdict = "approved" if ev.meta.get("approved") is True else "rejected"
        comment = ev.meta.get("comment")
        return f"{verdict} by {ev.meta.get('by')}" + (f": {comment}" if comment else "")
    return "" if ev.data is None else short_json(ev.data)


def _update_id(ev: Event) -> str:
    update_id = ev.meta.get("update_id")
    return f"  (update id {update_id})" if update_id else ""


def history_row(ev: Event) -> list[str]:
    """The columns of ``duro history``: seq, time, kind, op, name, details."""
    return [str(ev.seq), local_time(ev.time, ms=True), ev.kind,
            f"#{ev.op}" if ev.op is not None else "", ev.name or "", _details(ev)]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], style: Style,
          *, status_column: int | None = None) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded. On a TTY the
    header is bold and the cells of ``status_column`` are coloured by status."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str], *, header: bool = False) -> str:
        out = []
        for i, cell in enumerate(cells):
            text = cell if i == len(cells) - 1 else cell.ljust(widths[i])
            if not header and i == status_column:
                text = text.replace(cell, status_text(cell, style))
            out.append(text)
        line = "  ".join(out).rstrip()
        return style.paint(line, "bold") if header else line

    return [fmt(headers, header=True), *(fmt(row) for row in rows)]


def status_text(status: str, style: Style) -> str:
    """A status, coloured on a TTY."""
    color = _STATUS_COLORS.get(status)
    return style.paint(status, color) if color else status
