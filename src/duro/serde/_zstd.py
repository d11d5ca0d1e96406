"""Compression with zstd (the ``zstandard`` package: ``pip install 'duro[zstd]'``).

A payload is compressed when its stored form is at least ``threshold`` bytes, and the
result is kept only when it is smaller than what it replaces (envelope included), so
incompressible data (already compressed, encrypted) is left as is. The compressed
payload is ``{"encoding": "duro/zstd"}`` with a zstd frame (content size included) as
data.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from duro.errors import CodecConfigError, PayloadDecodeError
from duro.serde._extras import missing_extra, run_batch
from duro.serde._payload import Payload, from_stored, to_stored

if TYPE_CHECKING:
    import zstandard

__all__ = ["ZstdCodec"]

_METADATA = MappingProxyType({"encoding": "duro/zstd"})
_ENVELOPE_COST = 30  # the envelope of {"encoding":"duro/zstd"}: 8 + 22 bytes


class ZstdCodec:
    """Compress payloads of ``threshold`` bytes or more with zstd at ``level``.

    Args:
        threshold: Smaller payloads are left as they are (compressing 100 bytes of
            JSON rarely pays for the frame and the envelope). Default 1 KiB.
        level: zstd level (1-22; 3 is zstd's default; negative levels are faster).
        max_decoded_size: A frame that says it decodes to more is refused (a corrupt or
            crafted row must not make a reader allocate without bound). Default 1 GiB.

    Raises:
        CodecUnavailableError: ``zstandard`` is not installed.
        CodecConfigError: A negative threshold, or a level zstd does not have.
    """

    encoding = "duro/zstd"

    def __init__(self, *, threshold: int = 1024, level: int = 3,
                 max_decoded_size: int = 1 << 30) -> None:
        try:
            import zstandard
        except ImportError:
            raise missing_extra("zstandard", "zstd") from None
        if threshold < 0:
            raise CodecConfigError(f"zstd threshold must be >= 0, got {threshold}")
        if not -(1 << 17) <= level <= zstandard.MAX_COMPRESSION_LEVEL or level == 0:
            raise CodecConfigError(f"zstd level must be 1..{zstandard.MAX_COMPRESSION_LEVEL} "
                                   f"or negative, got {level}")
        self._zstd = zstandard
        self._threshold = threshold
        self._level = level
        self._max = max_decoded_size
        # (De)compression contexts are reused (creating one costs more than compressing
        # 1 KiB) but are not thread-safe, and big batches run in a thread: one per thread.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"ZstdCodec(threshold={self._threshold}, level={self._level})"

    def _contexts(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        try:
            return self._local.contexts  # type: ignore[no-any-return]
        except AttributeError:
            contexts = (self._zstd.ZstdCompressor(level=self._level),
                        self._zstd.ZstdDecompressor())
            self._local.contexts = contexts
            return contexts

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await run_batch(self._encode_one, payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await run_batch(self._decode_one, payloads)

    def _encode_one(self, payload: Payload) -> Payload:
        stored = to_stored(payload)
        if len(stored) < self._threshold:
            return payload
        compressed = self._contexts()[0].compress(stored)
        if len(compressed) + _ENVELOPE_COST >= len(stored):
            return payload
        return Payload(data=compressed, metadata=_METADATA)

    def _decode_one(self, payload: Payload) -> Payload:
        data = payload.data
        try:
            size = self._zstd.frame_content_size(data)
            if size < 0 or size > self._max:
                raise PayloadDecodeError(
                    f"zstd payload says it decodes to {size} bytes (limit {self._max})")
            return from_stored(self._contexts()[1].decompress(data))
        except self._zstd.ZstdError as exc:
            raise PayloadDecodeError(f"corrupt zstd payload: {exc}") from None
