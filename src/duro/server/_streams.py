"""``GET /v1/runs/{workflow_id}/stream``: a run's stream (what its steps give to
``duro.stream()``) live, as Server-Sent Events.

Each item is one SSE message whose ``id`` is its offset and whose data is its JSON
(:meth:`duro.StreamChunk.to_json`): a chunk, or a ``superseded`` / ``truncated`` marker.
A client that reconnects with ``Last-Event-ID`` (the last offset it has) gets the items
after it; ``?from=`` names the first offset wanted instead (default 0). When the run has
ended and every item was sent, a last message ``event: end`` carries the run.

The items come from :meth:`WorkflowHandle.stream` (the client's bounded poll of the
store, woken at once when this process's worker writes a batch); the SSE framing, the
keep-alive comments, the error and end messages are those of the events route
(``_events.py``). It ends when the client goes away, when the server stops (the client
reconnects with its ``Last-Event-ID``), or after an error of the store (``event: error``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response

from duro.client import StreamChunk, WorkflowHandle
from duro.errors import InvalidArgumentError
from duro.server._events import (
    KEEPALIVE,
    RETRY,
    end_event,
    error_event,
    pinned_handle,
    sse_response,
)
from duro.server._routes import Api

__all__ = ["stream"]


def _from(request: Request) -> int:
    """The first offset to send: after ``Last-Event-ID``, else ``?from=``, else 0."""
    last = request.headers.get("last-event-id")
    raw = last if last is not None else request.query_params.get("from")
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 2**62:
        raise InvalidArgumentError(f"{'Last-Event-ID' if last is not None else 'from'} "
                                   f"must be a stream offset (a whole number from 0), "
                                   f"not {raw[:40]!r}")
    return value + 1 if last is not None else value


def _message(chunk: StreamChunk) -> bytes:
    return b"id: %d\ndata: %b\n\n" % (chunk.offset, orjson.dumps(chunk.to_json()))


async def stream(request: Request, api: Api) -> Response:
    """The route's handler: a missing run is a 404 before any streaming starts."""
    first = _from(request)
    return sse_response(_body(api, await pinned_handle(request, api), first))


async def _body(api: Api, handle: WorkflowHandle[object], first: int) -> AsyncIterator[bytes]:
    yield RETRY
    items = aiter(handle.stream(from_offset=first))
    stopping = asyncio.ensure_future(api.stopping.wait())
    step: asyncio.Future[StreamChunk] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({step, stopping}, timeout=KEEPALIVE,
                                         return_when=asyncio.FIRST_COMPLETED)
            while step not in done:
                if stopping in done:
                    step.cancel()
                    return  # the client reconnects (to another server) with Last-Event-ID
                yield b": keepalive\n\n"
                done, _ = await asyncio.wait({step, stopping}, timeout=KEEPALIVE,
                                             return_when=asyncio.FIRST_COMPLETED)
            try:
                chunk = step.result()
            except StopAsyncIteration:
                yield end_event(await handle.describe())
                return
            except Exception as exc:  # the store went away: say so, the client retries
                yield error_event(exc)
                return
            yield _message(chunk)
    finally:
        stopping.cancel()
        if step is not None and not step.done():
            # The client went away while the next item was awaited: that poll of the
            # store ends here (left running, it polled until the run ended), and only
            # then can the iterator be closed (not while it runs).
            step.cancel()
            await asyncio.wait({step}, timeout=5)
        with contextlib.suppress(Exception):
            await items.aclose()  # type: ignore[attr-defined]
