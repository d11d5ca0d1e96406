"""The routes of schedules (``client.schedules``), queues, workers and stats."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from duro._checks import parse_duration, shown
from duro._clock import iso
from duro.client._records import queue_json
from duro.errors import DuroError, InvalidArgumentError
from duro.schedules._spec import MAX_TICKS, MAX_TIME
from duro.server._problems import (
    body_of,
    field,
    json,
    location,
    path_id,
    query_int,
    query_time,
)
from duro.server._routes import Api

__all__ = ["backfill_schedule", "create_schedule", "delete_schedule", "get_schedule",
           "instant", "list_schedules", "note_of", "pause_schedule", "queues", "resume_schedule",
           "schedule_ticks", "stats", "trigger_schedule", "update_schedule", "workers"]

T = TypeVar("T")

_MAX_AGO = 1e13
"""Seconds ``GET /v1/stats?since=`` may reach back at most (about 300,000 years: less than
``timedelta`` holds, far more than any history)."""

_OPTIONS: tuple[tuple[str, type], ...] = (
    ("cron", str), ("every", float), ("timezone", str), ("overlap", str),
    ("catch_up", float), ("queue", str), ("paused", bool))
_CREATE = frozenset({"id", "workflow", "args", "kwargs", "anchor", "note"}
                    | {name for name, _ in _OPTIONS})
_UPDATE = frozenset({"args", "kwargs", "cron", "every", "timezone", "anchor", "overlap",
                     "catch_up", "queue"})
_NOTE = frozenset({"note"})
_RANGE = frozenset({"start", "end"})
_MAX_NOTE = 4096


async def _refused(work: Awaitable[T]) -> T:
    """``work``'s result; the plain ``ValueError`` and ``TypeError`` the schedule API
    raises for a bad definition (a cron expression, a time zone) become
    :class:`InvalidArgumentError` (a 400, like the typed ones)."""
    try:
        return await work
    except (ValueError, TypeError) as exc:
        if isinstance(exc, DuroError):
            raise
        raise InvalidArgumentError(str(exc)) from None


def note_of(body: Mapping[str, Any]) -> str | None:
    """A body's ``note``: text of at most 4,096 characters, without NUL."""
    note: str | None = field(body, "note", str)
    if note is not None and (len(note) > _MAX_NOTE or "\x00" in note):
        raise InvalidArgumentError(f"note must be text of at most {_MAX_NOTE} characters "
                                   "without NUL")
    return note


def instant(body: Mapping[str, Any], name: str, *, required: bool = False) -> float | None:
    """A time in a body: epoch seconds, or ISO 8601 with a UTC offset."""
    value = body.get(name)
    if value is None and not required:
        return None
    ts = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            when = dt.datetime.fromisoformat(value)
            ts = when.timestamp() if when.tzinfo is not None else None
    if ts is None or not abs(ts) <= MAX_TIME:
        raise InvalidArgumentError(f"{name!r} must be epoch seconds or ISO 8601 with a UTC "
                                   f"offset (2024-05-01T12:00:00Z), not {shown(value)}")
    return ts


def _schedule_id(request: Request) -> str:
    return path_id(request, "schedule_id", "schedule id")


async def create_schedule(request: Request, api: Api) -> Response:
    body = await body_of(request, _CREATE)
    schedule_id = field(body, "id", str, required=True)
    workflow = field(body, "workflow", str, required=True)
    options = {name: value for name, kind in _OPTIONS
               if (value := field(body, name, kind)) is not None}
    info = await _refused(api.client.schedules.create(
        schedule_id, workflow, args=field(body, "args", list, []),
        kwargs=field(body, "kwargs", dict, {}), anchor=instant(body, "anchor"),
        note=note_of(body), **options))
    return json(info.to_json(), 201, location("schedules", info.schedule_id))


async def update_schedule(request: Request, api: Api) -> Response:
    schedule_id = _schedule_id(request)
    body = await body_of(request, _UPDATE)
    options = {name: value for name, kind in _OPTIONS if name != "paused"
               and (value := field(body, name, kind)) is not None}
    info = await _refused(api.client.schedules.update(
        schedule_id, args=field(body, "args", list), kwargs=field(body, "kwargs", dict),
        anchor=instant(body, "anchor"), **options))
    return json(info.to_json())


async def list_schedules(request: Request, api: Api) -> Response:
    return json({"schedules": [s.to_json() for s in await api.client.schedules.list()]})


async def get_schedule(request: Request, api: Api) -> Response:
    return json((await api.client.schedules.get(_schedule_id(request))).to_json())


async def schedule_ticks(request: Request, api: Api) -> Response:
    count = query_int(request, "count", 5, minimum=1, maximum=MAX_TICKS)
    info = await api.client.schedules.get(_schedule_id(request))
    return json({"schedule_id": info.schedule_id, "timezone": info.timezone,
                 "paused": info.paused,
                 "ticks": [iso(t) for t in info.upcoming_ticks(count)]})


async def pause_schedule(request: Request, api: Api) -> Response:
    schedule_id = _schedule_id(request)
    note = note_of(await body_of(request, _NOTE))
    return json((await api.client.schedules.pause(schedule_id, note=note)).to_json())


async def resume_schedule(request: Request, api: Api) -> Response:
    schedule_id = _schedule_id(request)
    note = note_of(await body_of(request, _NOTE))
    return json((await api.client.schedules.resume(schedule_id, note=note)).to_json())


async def trigger_schedule(request: Request, api: Api) -> Response:
    handle = await api.client.schedules.trigger(_schedule_id(request))
    info = await handle.describe()
    return json({"workflow_id": info.workflow_id, "run_id": info.run_id,
                 "status": info.status.value, "workflow_name": info.workflow_name}, 201,
                location("runs", info.workflow_id))


async def backfill_schedule(request: Request, api: Api) -> Response:
    schedule_id = _schedule_id(request)
    body = await body_of(request, _RANGE)
    start, end = instant(body, "start", required=True), instant(body, "end", required=True)
    assert start is not None and end is not None
    handles = await _refused(api.client.schedules.backfill(schedule_id, start, end))
    return json({"started": [{"workflow_id": h.workflow_id, "run_id": h.run_id}
                             for h in handles]})


async def delete_schedule(request: Request, api: Api) -> Response:
    await api.client.schedules.delete(_schedule_id(request))
    return Response(status_code=204)


async def queues(request: Request, api: Api) -> Response:
    return json({"queues": [queue_json(q) for q in await api.client.queues()]})


async def workers(request: Request, api: Api) -> Response:
    return json({"workers": [w.to_json() for w in await api.client.workers()]})


async def stats(request: Request, api: Api) -> Response:
    raw = request.query_params.get("since")
    since: dt.timedelta | dt.datetime | float | None
    if raw is not None and raw.strip()[-1:].lower() in ("s", "m", "h", "d"):
        # A duration (7d, 1h30m): that long before now, on the server's clock.
        seconds = parse_duration(raw)
        if seconds > _MAX_AGO:
            raise InvalidArgumentError(f"since must be at most {_MAX_AGO:.0f} seconds ago, "
                                       f"not {shown(raw)}")
        since = dt.timedelta(seconds=seconds)
    else:
        since = query_time(request, "since")
    found = await api.client.stats(since=since, workflow=request.query_params.get("workflow"))
    return json(found.to_json())
