"""Compression with zstd (the ``zstandard`` package: ``pip install 'duro[zstd]'``).

A payload is compressed when its stored form is at least ``threshold`` bytes, and the
result is kept only when it is smaller than what it replaces (envelope included), so
incompressible data (already compressed, encrypted) is left as is. The compressed
payload is ``{"encoding": "duro/zstd"}`` with a zstd frame (content size included) as
data.

Payloads under ``fast_below`` (16 KiB) are compressed at a fast level (-1 by default):
on a 1 KiB JSON payload level 3 takes 3.3 µs to compress and 1.7 µs to decompress (its
entropy tables cost more than the data), level -1 1.6 µs and 0.45 µs, for 220 bytes
instead of 187. That is the difference between zstd + AES-GCM fitting in the step hot
path's budget or not; bigger payloads, where the ratio matters, use ``level``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from duro.errors import CodecConfigError, PayloadDecodeError
from duro.serde._extras import THREAD_THRESHOLD, in_thread, inline, missing_extra
from duro.serde._payload import Payload, from_stored, frozen_metadata, make_payload, to_stored

if TYPE_CHECKING:
    import zstandard

__all__ = ["ZstdCodec"]

_METADATA = frozen_metadata({"encoding": "duro/zstd"})
_ENVELOPE_COST = 30  # the envelope of {"encoding":"duro/zstd"}: 8 + 22 bytes


class ZstdCodec:
    """Compress payloads of ``threshold`` bytes or more with zstd at ``level``.

    Args:
        threshold: Smaller payloads are left as they are (compressing 100 bytes of
            JSON rarely pays for the frame and the envelope). Default 1 KiB.
        level: zstd level for payloads of ``fast_below`` bytes or more (1-22; 3 is
            zstd's default; negative levels are faster and compress less).
        fast_level: zstd level for smaller payloads (default -1, see above).
        fast_below: Where ``level`` takes over from ``fast_level``. Default 16 KiB.
        max_decoded_size: A frame that says it decodes to more is refused (a corrupt or
            crafted row must not make a reader allocate without bound). Default 1 GiB.

    Raises:
        CodecUnavailableError: ``zstandard`` is not installed.
        CodecConfigError: A negative threshold, or a level zstd does not have.
    """

    encoding = "duro/zstd"

    def __init__(self, *, threshold: int = 1024, level: int = 3, fast_level: int = -1,
                 fast_below: int = 16 * 1024, max_decoded_size: int = 1 << 30) -> None:
        try:
            import zstandard
        except ImportError:
            raise missing_extra("zstandard", "zstd") from None
        if threshold < 0:
            raise CodecConfigError(f"zstd threshold must be >= 0, got {threshold}")
        for value in (level, fast_level):
            if not -(1 << 17) <= value <= zstandard.MAX_COMPRESSION_LEVEL or value == 0:
                raise CodecConfigError(f"zstd level must be 1..{zstandard.MAX_COMPRESSION_LEVEL}"
                                       f" or negative, got {value}")
        self._zstd = zstandard
        self._threshold = threshold
        self._level = level
        self._fast_level = fast_level
        self._fast_below = fast_below
        self._max = max_decoded_size
        # (De)compression contexts are reused (creating one costs more than compressing
        # 1 KiB) but are not thread-safe, and big batches run in a thread: one per thread.
        self._local = threading.local()

    def __repr__(self) -> str:
        return (f"ZstdCodec(threshold={self._threshold}, level={self._level}, "
                f"fast_level={self._fast_level}, fast_below={self._fast_below})")

    def _contexts(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdCompressor,
                                 zstandard.ZstdDecompressor]:
        """This thread's (fast compressor, compressor, decompressor)."""
        try:
            return self._local.contexts  # type: ignore[no-any-return]
        except AttributeError:
            contexts = (self._zstd.ZstdCompressor(level=self._fast_level),
                        self._zstd.ZstdCompressor(level=self._level),
                        self._zstd.ZstdDecompressor())
            self._local.contexts = contexts
            return contexts

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        done = inline(self._encode_one, payloads)
        return done if done is not None else await in_thread(self._encode_one, payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        done = inline(self._decode_one, payloads)
        return done if done is not None else await in_thread(self._decode_one, payloads)

    def try_encode(self, payload: Payload) -> Payload | None:
        return self._encode_one(payload) if len(payload.data) <= THREAD_THRESHOLD else None

    def try_decode(self, payload: Payload) -> Payload | None:
        return self._decode_one(payload) if len(payload.data) <= THREAD_THRESHOLD else None

    def _encode_one(self, payload: Payload) -> Payload:
        stored = to_stored(payload)
        if len(stored) < self._threshold:
            return payload
        fast, slow, _ = self._contexts()
        compressed = (fast if len(stored) < self._fast_below else slow).compress(stored)
        if len(compressed) + _ENVELOPE_COST >= len(stored):
            return payload
        return make_payload(compressed, _METADATA)

    def _decode_one(self, payload: Payload) -> Payload:
        data = payload.data
        try:
            size = self._zstd.frame_content_size(data)
            if size < 0 or size > self._max:
                raise PayloadDecodeError(
                    f"zstd payload says it decodes to {size} bytes (limit {self._max})")
            return from_stored(self._contexts()[2].decompress(data))
        except self._zstd.ZstdError as exc:
            raise PayloadDecodeError(f"corrupt zstd payload: {exc}") from None
