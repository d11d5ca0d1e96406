"""Streamed model output to the run's stream (``duro.stream``), inside the model step.

pydantic-ai consumes a streamed model request inside its durable unit with one event
handler; we put ours first, so each text delta (or each event, as JSON) reaches
``handle.stream()`` while the model writes, then hand the events on to the user's
handler if there is one. A retried request's chunks are superseded by duro.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.messages import (
    AgentStreamEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.tools import RunContext

import duro

__all__ = ["StreamMode", "stream_handler"]

StreamMode = Literal["text", "events"] | None

_EVENTS: TypeAdapter[AgentStreamEvent] = TypeAdapter(AgentStreamEvent)


def _chunk(mode: StreamMode, event: AgentStreamEvent) -> Any:
    if mode == "events":
        return _EVENTS.dump_python(event, mode="json")
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content or None
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta or None
    return None


def stream_handler(mode: StreamMode, user: EventStreamHandler[Any] | None
                   ) -> EventStreamHandler[Any] | None:
    """The handler a streamed model step runs: ours, then ``user``'s (if any)."""
    if mode is None:
        return user

    async def handle(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
        async def tee() -> AsyncIterator[AgentStreamEvent]:
            async for event in events:
                chunk = _chunk(mode, event)
                if chunk is not None:
                    duro.stream(chunk)
                yield event

        if user is None:
            async for _ in tee():
                pass
        else:
            await user(ctx, tee())

    return handle
