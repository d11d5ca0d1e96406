"""Large-payload offload: big payloads go to a blob store, the history keeps a reference.

A payload whose stored form is larger than the threshold is put in a :class:`BlobStore`
under the sha256 of its stored form (hex), and replaced by ``{"encoding": "duro/blob",
"sha256": HEX, "size": N}`` with empty data: ~130 bytes in the history whatever the
payload's size. Decoding gets the blob, checks its size and hash, and restores the
payload. Blobs are content-addressed (the same payload is stored once) and duro never
deletes one: removing blobs no history references any more is the operator's job.

Put this codec *last* in a chain (after encryption) so that what reaches the blob store
is encrypted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from duro.errors import (
    BlobCorruptError,
    BlobMissingError,
    CodecConfigError,
    InvalidArgumentError,
    PayloadDecodeError,
)
from duro.serde._extras import THREAD_THRESHOLD
from duro.serde._payload import Payload, from_stored, to_stored

__all__ = ["BlobStore", "FileBlobStore", "OffloadCodec", "check_blob_key"]

_ENCODING = "duro/blob"
_KEY = re.compile(r"[0-9a-f]{64}")


class BlobStore(Protocol):
    """Where offloaded payloads live. Keys are sha256 digests (64 lowercase hex digits)
    of the content; a put of a key that exists may skip the write (same content)."""

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None:
        """The blob, or ``None`` when the store has no such key."""
        ...


def check_blob_key(key: str) -> str:
    """``key`` if it is a sha256 hex digest (so never a path); otherwise an error."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidArgumentError(f"blob key {key!r} is not a sha256 hex digest")
    return key


async def _sha256(data: bytes) -> str:
    if len(data) <= THREAD_THRESHOLD:
        return hashlib.sha256(data).hexdigest()
    return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())


class OffloadCodec:
    """Offload payloads larger than ``threshold`` bytes to ``store``.

    Args:
        store: The blob store (:class:`FileBlobStore`, :class:`~duro.serde.S3BlobStore`,
            or your own :class:`BlobStore`).
        threshold: Payloads whose stored form is at most this many bytes stay inline.
            Default 256 KiB.
    """

    encoding = _ENCODING

    def __init__(self, store: BlobStore, *, threshold: int = 256 * 1024) -> None:
        if threshold < 0:
            raise CodecConfigError(f"offload threshold must be >= 0, got {threshold}")
        self._store = store
        self._threshold = threshold

    def __repr__(self) -> str:
        return f"OffloadCodec({self._store!r}, threshold={self._threshold})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(await asyncio.gather(*(self._encode_one(p) for p in payloads)))

    async def _encode_one(self, payload: Payload) -> Payload:
        stored = to_stored(payload)
        if len(stored) <= self._threshold:
            return payload
        digest = await _sha256(stored)
        await self._store.put(digest, stored)
        return Payload(data=b"", metadata={"encoding": _ENCODING, "sha256": digest,
                                           "size": str(len(stored))})

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        refs = [_reference(p) for p in payloads]
        unique = dict.fromkeys(refs)  # a batch naming one blob twice gets it once
        blobs = await asyncio.gather(*(self._fetch(digest, size) for digest, size in unique))
        restored = dict(zip(unique, blobs, strict=True))
        return [restored[ref] for ref in refs]

    async def _fetch(self, digest: str, size: int) -> Payload:
        blob = await self._store.get(digest)
        where = f"blob sha256:{digest} ({size} bytes) in {self._store!r}"
        if blob is None:
            raise BlobMissingError(f"offloaded payload not found: {where}",
                                   digest=digest, size=size)
        if len(blob) != size or await _sha256(blob) != digest:
            raise BlobCorruptError(f"offloaded payload does not match its reference: {where} "
                                   f"holds {len(blob)} bytes of other content",
                                   digest=digest, size=size)
        return from_stored(blob)


def _reference(payload: Payload) -> tuple[str, int]:
    digest = payload.metadata.get("sha256", "")
    size = payload.metadata.get("size", "")
    if not _KEY.fullmatch(digest) or not size.isdigit():
        raise PayloadDecodeError(f"corrupt blob reference: {dict(payload.metadata)!r}")
    return digest, int(size)


class FileBlobStore:
    """Blobs as files under ``directory`` (``ab/abcd…`` by digest), private (0600 files,
    0700 directories), written atomically (temporary file, fsync, rename, fsync of the
    directory) so a crash leaves either no blob or the whole one.

    Reads and writes run in a thread: a 20 MB blob must not stall the event loop.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._root = Path(directory)

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self._root)!r})"

    def path(self, key: str) -> Path:
        """The file that holds (or would hold) the blob ``key``."""
        return self._root / key[:2] / check_blob_key(key)

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self.path(key), data)

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, self.path(key))

    def _put(self, path: Path, data: bytes) -> None:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size == len(data):
                return  # content-addressed: that name can only hold this content
        self._make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)  # 0600
        try:
            with open(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    def _make_dirs(self, sub: Path) -> None:
        if sub.is_dir():
            return
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            sub.mkdir(mode=0o700)
            _fsync_dir(self._root)

    @staticmethod
    def _get(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
