"""``GET /v1/runs/{workflow_id}/events``: a run's history live, as Server-Sent Events.

Each history event is one SSE message whose ``id`` is its sequence number and whose
data is its JSON (as ``duro history --json`` and the history route give it), so a
client that reconnects with ``Last-Event-ID`` gets exactly the events after the last
one it saw. When the run has ended, a last message ``event: end`` carries the run (as
``GET /v1/runs/{id}``) and the stream closes.

The stream follows the run it found when it opened (a reset or retry starts another
run of the id: open a new stream for it). It polls the store through the client, at
first every 50 ms and backing off to once a second while nothing happens (back to 50 ms
at each new event); between polls it holds no connection of the store's. It ends when
the client goes away (Starlette cancels it), when the server stops
(:attr:`Api.stopping`: the client reconnects with its ``Last-Event-ID``), or after an
error of the store, sent as ``event: error`` with a problem document.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from duro.client import Event, RunInfo, WorkflowHandle
from duro.errors import DuroError, InvalidArgumentError
from duro.server._problems import path_id, problem_document, problem_of
from duro.server._routes import Api
from duro.server._runs import wait_id
from duro.store import RunStatus

__all__ = ["FIRST_POLL", "KEEPALIVE", "LONGEST_POLL", "RETRY", "end_event", "error_event",
           "events", "pinned_handle", "sse_response"]

FIRST_POLL, LONGEST_POLL = 0.05, 1.0
"""Seconds between looks at the run: the first after an event, the longest."""
KEEPALIVE = 15.0
"""Seconds without a message after which a comment line is sent (proxies close silent
connections; a write is also how a vanished client is noticed)."""
RETRY = b"retry: 1000\n\n"
"""The first message of a stream: how long an EventSource waits before it reconnects."""


def _message(event: Event) -> bytes:
    return b"id: %d\ndata: %b\n\n" % (event.seq, orjson.dumps(event.to_json()))


def _ended(info: RunInfo) -> bool:
    # A corrupt row never changes either: nothing more will come.
    return info.status.is_terminal or info.status == RunStatus.CORRUPT


def _after(request: Request) -> int:
    """The sequence number of the last event the client has: ``Last-Event-ID``, else
    ``?after=``; -1 for none."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None:
        return -1  # from the first event, whose sequence number is 0
    try:
        after = int(raw)
    except ValueError:
        after = -1
    if not 0 <= after <= 2**62:
        raise InvalidArgumentError(f"Last-Event-ID (or after) must be an event's sequence "
                                   f"number, not {raw[:40]!r}")
    return after


async def events(request: Request, api: Api) -> Response:
    """The route's handler: a missing run is a 404 before any streaming starts."""
    after = _after(request)
    return sse_response(_stream(api, await pinned_handle(request, api), after))


async def pinned_handle(request: Request, api: Api) -> WorkflowHandle[object]:
    """The run a stream route follows: the path's workflow id (its ``?run_id=``, else its
    latest run), found now.

    Raises:
        RunNotFoundError: There is no such run (a 404 before any streaming starts).
    """
    handle = api.client.get_handle(path_id(request, "workflow_id", "workflow id"),
                                   wait_id(request.query_params.get("run_id"), "run id"))
    info = await handle.describe()
    return api.client.get_handle(info.workflow_id, info.run_id)


def sse_response(body: AsyncIterator[bytes]) -> Response:
    """A Server-Sent Events response (never cached, never buffered by a proxy)."""
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def error_event(exc: BaseException) -> bytes:
    """The last message of a stream that failed: ``event: error`` with a problem
    document (the client reconnects)."""
    status, code = problem_of(exc)
    detail = str(exc) if isinstance(exc, DuroError) else "internal error"
    return b"event: error\ndata: %b\n\n" % orjson.dumps(problem_document(status, code, detail))


def end_event(info: RunInfo) -> bytes:
    """The last message of a stream whose run ended: ``event: end`` with the run."""
    return b"event: end\ndata: %b\n\n" % orjson.dumps(info.to_json())


async def _stream(api: Api, handle: WorkflowHandle[object], seen: int) -> AsyncIterator[bytes]:
    yield RETRY
    delay, quiet = FIRST_POLL, 0.0
    while True:
        try:
            # The run first, then its events: an end seen here has all of them below.
            info = await handle.describe()
            if info.history_length > seen:
                fresh = [e for e in await handle.history() if e.seq > seen]
                if fresh:
                    yield b"".join(map(_message, fresh))
                    seen, delay, quiet = fresh[-1].seq, FIRST_POLL, 0.0
        except Exception as exc:  # the store went away: say so, the client retries
            yield error_event(exc)
            return
        if _ended(info):
            yield end_event(info)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(api.stopping.wait(), delay)
        if api.stopping.is_set():
            return  # the client reconnects (to another server) with its Last-Event-ID
        quiet += delay
        if quiet >= KEEPALIVE:
            yield b": keepalive\n\n"
            quiet = 0.0
        delay = min(delay * 1.5, LONGEST_POLL)
