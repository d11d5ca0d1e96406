"""Payloads and their stored form: the bytes duro keeps in its BLOB columns.

A :class:`Payload` is data plus string metadata; ``metadata["encoding"]`` says what the
data is (``"json"`` for the data converter's JSON, ``"duro/zstd"`` etc. for a codec's
output). The stored form has two shapes, told apart by the first byte:

**Plain JSON** — a payload whose metadata is exactly ``{"encoding": "json"}`` is stored
as its data, byte for byte (what duro stored before codecs existed). No codec, no
envelope, no cost; every existing database reads the same.

**Envelope** — anything else::

    offset  size  field
    0       5     magic        b"\\x00duro"
    5       1     version      1
    6       2     header size  H, unsigned big-endian (so metadata is at most 64 KiB)
    8       H     header       the metadata: a JSON object of strings, keys sorted, compact
    8+H     rest  data

JSON text never starts with a NUL byte (RFC 8259: it starts with whitespace or a
value), so a stored payload starting with ``\\x00`` is an envelope and anything else is
plain JSON. A JSON-tagged payload whose data itself starts with NUL (not JSON, but
possible) is enveloped so that it reads back as it was written.

``None`` (a SQL NULL: no payload at all) is not a payload: the helpers that take stored
bytes (:meth:`CodecChain.encode_stored <duro.serde.CodecChain.encode_stored>`) pass it
through untouched, and :func:`to_stored`/:func:`from_stored` never see it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import orjson

from duro.errors import PayloadDecodeError, SerializationError

__all__ = ["ENVELOPE_MAGIC", "JSON_METADATA", "Payload", "from_stored", "is_envelope",
           "to_stored"]

ENVELOPE_MAGIC = b"\x00duro"
_VERSION = 1
_PREFIX = struct.Struct(">5sBH")  # magic, version, header size
_MAX_HEADER = 0xFFFF

JSON_METADATA: Mapping[str, str] = MappingProxyType({"encoding": "json"})
"""The metadata of a payload no codec touched (shared, read-only)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Payload:
    """Encoded data and what it takes to read it.

    ``metadata["encoding"]`` names the format of ``data``: ``"json"`` for the data
    converter's JSON, a codec's tag (``"duro/zstd"``, ``"duro/aes-gcm"``, ``"duro/blob"``)
    for a codec's output; codecs add their own keys (a key id, a content hash).
    """

    data: bytes
    metadata: Mapping[str, str] = field(default_factory=lambda: JSON_METADATA)

    @property
    def encoding(self) -> str:
        """``metadata["encoding"]``, or ``""`` when there is none."""
        return self.metadata.get("encoding", "")


def is_envelope(stored: bytes) -> bool:
    """Whether stored bytes are an envelope (so not plain JSON)."""
    return stored[:1] == b"\x00"


def to_stored(payload: Payload) -> bytes:
    """The bytes to store for ``payload``: its data itself when it is plain JSON,
    otherwise an envelope (see the module docstring).

    Raises:
        SerializationError: The metadata is larger than an envelope header can hold.
    """
    metadata = payload.metadata
    data = payload.data
    if (metadata is JSON_METADATA or (len(metadata) == 1 and metadata.get("encoding") == "json")) \
            and data[:1] != b"\x00":
        return data
    header = orjson.dumps(dict(metadata), option=orjson.OPT_SORT_KEYS)
    if len(header) > _MAX_HEADER:
        raise SerializationError(
            f"payload metadata is {len(header)} bytes; an envelope holds {_MAX_HEADER} at most")
    return b"".join((_PREFIX.pack(ENVELOPE_MAGIC, _VERSION, len(header)), header, data))


def from_stored(stored: bytes) -> Payload:
    """The payload that :func:`to_stored` wrote as ``stored``.

    Bytes that do not start with NUL are plain JSON: ``Payload(stored, JSON_METADATA)``
    (they are not parsed here; empty bytes too).

    Raises:
        PayloadDecodeError: The bytes start like an envelope but are not a valid one
            (truncated, a newer version, a header that is not a JSON object of strings).
    """
    if stored[:1] != b"\x00":
        return Payload(data=stored)
    if len(stored) < _PREFIX.size:
        raise PayloadDecodeError(f"corrupt payload envelope: {len(stored)} bytes, truncated")
    magic, version, size = _PREFIX.unpack_from(stored)
    if magic != ENVELOPE_MAGIC:
        raise PayloadDecodeError(f"corrupt payload: starts with NUL but not with {magic!r}")
    if version != _VERSION:
        raise PayloadDecodeError(
            f"payload envelope version {version} is not known to this duro (knows {_VERSION})")
    end = _PREFIX.size + size
    if len(stored) < end:
        raise PayloadDecodeError("corrupt payload envelope: header truncated")
    return Payload(data=stored[end:], metadata=_parse_header(stored[_PREFIX.size:end]))


def _parse_header(header: bytes) -> Mapping[str, str]:
    try:
        metadata = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise PayloadDecodeError(f"corrupt payload envelope header: {exc}") from None
    if not isinstance(metadata, dict) or not all(
            isinstance(v, str) for v in metadata.values()):
        raise PayloadDecodeError("corrupt payload envelope header: not an object of strings")
    return metadata
