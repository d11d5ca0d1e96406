"""Where payloads cross between the engine and the store: the codec chain at the edges.

The engine works on plain JSON payloads (decoded by type hints, :mod:`duro.serde._json`);
the store keeps them in their *stored form*: the same bytes when no codec is configured,
else whatever the :class:`~duro.serde.CodecChain` made of them (compressed, encrypted,
offloaded). This class is the one place where the two meet. The worker encodes what it
produces (a step's result, published state, an update's result, a run's result, the
input of a child or of the next run) before writing it, and decodes what it reads (a
history before replaying it, a message before applying it); the client encodes what it
sends (inputs, signals, update arguments) and decodes what it reads (results, state,
update outcomes, histories). The store never looks inside a payload.

Which event data is a payload is :data:`duro._history.PAYLOAD_KINDS`; errors and meta
stay plain JSON (an operator reads them with no key). Decoding is by the stored bytes'
own tags, so decoding plain JSON is a no-op: a database written before a codec was
configured keeps working, and so does one whose chain gained or lost a codec (as long as
every codec its payloads used is still there).

With no codec every method returns at once, the same objects: the default costs nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, overload

from duro._history import PAYLOAD_KINDS, EventRecord, NewEvent
from duro.serde._codec import CodecChain

if TYPE_CHECKING:
    from duro.store import Message

__all__ = ["PayloadConverter"]


class PayloadConverter:
    """Encodes payloads to their stored form and back, with a codec chain (or none).

    Args:
        codec: The chain (or a sequence of codecs); None or empty: payloads are stored
            as their JSON.
    """

    def __init__(self, codec: CodecChain | None = None) -> None:
        self.chain = codec if codec is not None else CodecChain()
        self.active = not self.chain.empty

    def __repr__(self) -> str:
        return f"PayloadConverter({self.chain!r})"

    @overload
    async def encode(self, data: bytes) -> bytes: ...
    @overload
    async def encode(self, data: None) -> None: ...
    @overload
    async def encode(self, data: bytes | None) -> bytes | None: ...
    async def encode(self, data: bytes | None) -> bytes | None:
        """One payload's stored form (one already in stored form stays as it is)."""
        if not self.active or not data or data[0] == 0:
            return data
        encoded = (await self.chain.encode_stored([data]))[0]
        assert encoded is not None
        return encoded

    @overload
    async def decode(self, data: bytes) -> bytes: ...
    @overload
    async def decode(self, data: None) -> None: ...
    @overload
    async def decode(self, data: bytes | None) -> bytes | None: ...
    async def decode(self, data: bytes | None) -> bytes | None:
        """One stored payload as its JSON (plain JSON is returned as it is, with or
        without a chain)."""
        if not data or data[0] != 0:
            return data
        decoded = (await self.chain.decode_stored([data]))[0]
        assert decoded is not None
        return decoded

    async def encode_many(self, items: Sequence[bytes | None]) -> list[bytes | None]:
        """Payloads' stored forms (those already in stored form stay as they are)."""
        if not self.active:
            return list(items)
        picked = [i for i, item in enumerate(items) if item and item[0] != 0]
        out = list(items)
        if picked:
            encoded = await self.chain.encode_stored([items[i] for i in picked])
            for i, data in zip(picked, encoded, strict=True):
                out[i] = data
        return out

    async def decode_many(self, items: Sequence[bytes | None]) -> list[bytes | None]:
        """Stored payloads as their JSON (plain ones pass untouched, with or without a
        chain: a payload written under a codec needs it, though)."""
        if not any(item and item[0] == 0 for item in items):
            return list(items)
        return await self.chain.decode_stored(items)

    async def encode_events(self, events: Sequence[NewEvent]) -> list[NewEvent]:
        """Events with the data of the payload kinds in stored form (for the store)."""
        if not self.active:
            return list(events)
        picked = [i for i, e in enumerate(events)
                  if e.kind in PAYLOAD_KINDS and e.data and e.data[0] != 0]
        if not picked:
            return list(events)
        encoded = await self.chain.encode_stored([events[i].data for i in picked])
        out = list(events)
        for i, data in zip(picked, encoded, strict=True):
            e = out[i]
            out[i] = NewEvent(kind=e.kind, ts=e.ts, op=e.op, name=e.name, data=data,
                              meta=e.meta)
        return out

    def try_encode_events(self, events: Sequence[NewEvent]) -> list[NewEvent] | None:
        """:meth:`encode_events` without awaiting, or ``None`` when a codec must await
        (a big payload for a thread, an offload). The worker's usual path: a write
        encoded this way needs no turn (nothing can overtake it)."""
        out = list(events)
        for i, e in enumerate(events):
            if e.kind in PAYLOAD_KINDS and e.data and e.data[0] != 0:
                data = self.chain.try_encode_stored(e.data)
                if data is None:
                    return None
                out[i] = NewEvent(kind=e.kind, ts=e.ts, op=e.op, name=e.name, data=data,
                                  meta=e.meta)
        return out

    async def encode_messages(self, messages: Sequence[Message]) -> list[Message]:
        """Messages with their payloads in stored form (carried to another run)."""
        if not self.active:
            return list(messages)
        data = await self.encode_many([m.data for m in messages])
        return [m if d is m.data else dataclasses.replace(m, data=d)
                for m, d in zip(messages, data, strict=True)]

    async def decode_history(self, events: list[EventRecord]) -> list[EventRecord]:
        """A history with its payloads as JSON (the same list when nothing is encoded)."""
        picked = [i for i, e in enumerate(events) if e.data and e.data[0] == 0]
        if not picked:
            return events
        decoded = await self.chain.decode_stored([events[i].data for i in picked])
        out = list(events)
        for i, data in zip(picked, decoded, strict=True):
            e = out[i]
            out[i] = EventRecord(run_id=e.run_id, seq=e.seq, kind=e.kind, ts=e.ts, op=e.op,
                                 name=e.name, data=data, meta=e.meta)
        return out
