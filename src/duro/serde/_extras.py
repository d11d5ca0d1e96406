"""What the shipped codecs share: optional packages, and big payloads off the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from duro.errors import CodecUnavailableError
from duro.serde._payload import Payload

__all__ = ["THREAD_THRESHOLD", "missing_extra", "run_batch"]

THREAD_THRESHOLD = 1 << 20
"""A batch holding more bytes than this is transformed in a worker thread: compressing or
encrypting 1 MiB takes ~1 ms, longer than the event loop should stall; below it the
thread hand-off (~50 µs) would cost more than the work."""


def missing_extra(package: str, extra: str) -> CodecUnavailableError:
    """The error for a codec whose optional package is not installed."""
    return CodecUnavailableError(
        f"this codec needs the {package!r} package: pip install 'duro[{extra}]'", extra=extra)


async def run_batch(transform: Callable[[Payload], Payload],
                    payloads: Sequence[Payload]) -> list[Payload]:
    """``transform`` applied to each payload: inline for small batches, in a thread
    when the batch is large (see :data:`THREAD_THRESHOLD`)."""
    if sum(len(p.data) for p in payloads) <= THREAD_THRESHOLD:
        return [transform(p) for p in payloads]
    return await asyncio.to_thread(lambda: [transform(p) for p in payloads])
