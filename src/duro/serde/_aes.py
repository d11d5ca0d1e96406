"""AES-256-GCM encryption (the ``cryptography`` package: ``pip install 'duro[crypto]'``).

An encrypted payload is ``{"encoding": "duro/aes-gcm", "key-id": ID}`` with data
``nonce (12 bytes) || ciphertext || tag (16 bytes)``: the whole stored form of the
payload it wraps (its metadata too) is encrypted under the key named ``ID``, with a fresh
random 96-bit nonce per payload. The associated data is ``b"duro/aes-gcm\\x00" + ID``, so
the key id cannot be swapped without the tag failing.

Keys are 32 bytes, named by key ids. New payloads use the *current* key id; every other
key the source knows still decrypts, which is how keys rotate: add the new key, make it
current, keep the old one until no stored payload uses it. A key id must never be reused
for another key (the codec caches keys by id).

Keys come from a mapping, from a callable ``key_id -> bytes | None`` (sync or async: a
KMS, a secret manager), or from the environment (:meth:`AesGcmCodec.from_env`)::

    DURO_KEYS="k1:<base64 of 32 bytes>,k2:<base64 of 32 bytes>"
    DURO_KEY_ID=k2            # the current key; may be left out when there is one key
"""

from __future__ import annotations

import base64
import binascii
import inspect
import os
import re
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

from duro.errors import CodecConfigError, PayloadTamperedError, UnknownKeyError
from duro.serde._extras import THREAD_THRESHOLD, in_thread, inline, missing_extra
from duro.serde._payload import Payload, from_stored, frozen_metadata, make_payload, to_stored

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEYS_VAR", "KEY_ID_VAR", "AesGcmCodec", "KeySource", "generate_key",
           "parse_keys"]

KeySource: TypeAlias = (Mapping[str, bytes]
                        | Callable[[str], bytes | Awaitable[bytes | None] | None])
"""Where keys come from: a mapping of key id to key, or a callable that returns the key
for an id (``None`` when it has none), possibly async."""

KEYS_VAR = "DURO_KEYS"
KEY_ID_VAR = "DURO_KEY_ID"

_ENCODING = "duro/aes-gcm"
_KEY_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded (the form ``DURO_KEYS`` takes)."""
    return base64.b64encode(os.urandom(_KEY_SIZE)).decode("ascii")


_forks = 0  # bumped in a forked child: a pool drawn before the fork is never reused


def _after_fork_in_child() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Nonces:
    """Random 96-bit nonces, drawn from ``os.urandom`` a batch at a time.

    Each is as random as one drawn alone; a draw per payload cost ~11 µs inside a busy
    worker (the system call gives up the GIL), more than the encryption itself. A
    forked child drops the inherited pool: two processes sharing one would repeat
    nonces under one key, which breaks GCM.
    """

    _BATCH = 512

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        self._forks = _forks
        self._lock = threading.Lock()

    def take(self) -> bytes:
        with self._lock:
            if self._at + _NONCE_SIZE > len(self._pool) or self._forks != _forks:
                self._pool, self._at = os.urandom(_NONCE_SIZE * self._BATCH), 0
                self._forks = _forks
            nonce = self._pool[self._at:self._at + _NONCE_SIZE]
            self._at += _NONCE_SIZE
            return nonce


class AesGcmCodec:
    """Encrypt every payload with AES-256-GCM under the current key.

    Args:
        keys: The keys by id: a mapping, or a callable (sync or async) returning the key
            for an id or ``None``. A callable is asked once per key id; what it returns
            is cached (a ``None`` is not: the key may appear later).
        current_key_id: The key id new payloads are encrypted under.

    Raises:
        CodecUnavailableError: ``cryptography`` is not installed.
        CodecConfigError: A key id that is not 1-64 of ``[A-Za-z0-9._-]`` (starting
            alphanumeric), a key that is not 32 bytes, or a current key id the mapping
            does not have.
    """

    encoding = _ENCODING

    def __init__(self, keys: KeySource, *, current_key_id: str) -> None:
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise missing_extra("cryptography", "crypto") from None
        self._aesgcm = AESGCM
        self._nonces = _Nonces()
        self._invalid_tag = InvalidTag
        _check_key_id(current_key_id)
        self._current = current_key_id
        self._ciphers: dict[str, AESGCM] = {}
        self._tags: dict[str, tuple[Mapping[str, str], bytes]] = {}
        self._lookup: Callable[[str], bytes | Awaitable[bytes | None] | None] | None = None
        if isinstance(keys, Mapping):
            for key_id, key in keys.items():
                self._ciphers[key_id] = self._cipher(key_id, key)
            if current_key_id not in self._ciphers:
                raise CodecConfigError(
                    f"current key id {current_key_id!r} is not among the keys "
                    f"({', '.join(sorted(self._ciphers)) or 'none'})")
        else:
            self._lookup = keys

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AesGcmCodec:
        """The codec for the keys in ``DURO_KEYS`` and the current id in ``DURO_KEY_ID``
        (see the module docstring for the format).

        Raises:
            CodecConfigError: ``DURO_KEYS`` is missing or malformed, or ``DURO_KEY_ID`` is
                missing while there are several keys, or names none of them.
        """
        env = os.environ if environ is None else environ
        keys = parse_keys(env.get(KEYS_VAR, ""))
        current = env.get(KEY_ID_VAR, "").strip()
        if not current:
            if len(keys) != 1:
                raise CodecConfigError(
                    f"{KEY_ID_VAR} must name the current key among the {len(keys)} keys "
                    f"of {KEYS_VAR} ({', '.join(keys)})")
            current = next(iter(keys))
        return cls(keys, current_key_id=current)

    def __repr__(self) -> str:
        return f"AesGcmCodec(current_key_id={self._current!r})"

    @property
    def current_key_id(self) -> str:
        return self._current

    def _cipher(self, key_id: str, key: object) -> AESGCM:
        _check_key_id(key_id)
        if not isinstance(key, bytes) or len(key) != _KEY_SIZE:
            size = f"{len(key)} bytes" if isinstance(key, bytes) else type(key).__name__
            raise CodecConfigError(
                f"AES-256-GCM key {key_id!r} must be {_KEY_SIZE} bytes, got {size}")
        return self._aesgcm(key)

    async def _ensure(self, key_ids: set[str]) -> None:
        """Fetch from the callable the keys not cached yet; unknown ids stay absent."""
        if self._lookup is None:
            return
        for key_id in key_ids - self._ciphers.keys():
            key = self._lookup(key_id)
            if inspect.isawaitable(key):
                key = await key
            if key is not None:
                self._ciphers[key_id] = self._cipher(key_id, key)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self._lookup is not None:
            await self._ensure({self._current})
        if self._current not in self._ciphers:
            raise CodecConfigError(f"the key source has no key for the current key id "
                                   f"{self._current!r}")
        done = inline(self._encrypt, payloads)
        return done if done is not None else await in_thread(self._encrypt, payloads)

    def try_encode(self, payload: Payload) -> Payload | None:
        if len(payload.data) > THREAD_THRESHOLD or self._current not in self._ciphers:
            return None  # a thread, or the key source to ask first
        return self._encrypt(payload)

    def try_decode(self, payload: Payload) -> Payload | None:
        if len(payload.data) > THREAD_THRESHOLD or (
                self._lookup is not None and payload.metadata.get("key-id") not in self._ciphers):
            return None
        return self._decrypt(payload)

    def _encrypt(self, payload: Payload) -> Payload:
        key_id = self._current
        metadata, aad = self._tag(key_id)
        nonce = self._nonces.take()
        sealed = self._ciphers[key_id].encrypt(nonce, to_stored(payload), aad)
        return make_payload(nonce + sealed, metadata)

    def _tag(self, key_id: str) -> tuple[Mapping[str, str], bytes]:
        """The metadata and the associated data of payloads under ``key_id``."""
        tag = self._tags.get(key_id)
        if tag is None:
            tag = (frozen_metadata({"encoding": _ENCODING, "key-id": key_id}),
                   b"duro/aes-gcm\x00" + key_id.encode("ascii"))  # ids are ASCII (_KEY_ID)
            self._tags[key_id] = tag
        return tag

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self._lookup is not None:
            await self._ensure({p.metadata.get("key-id", "") for p in payloads})
        done = inline(self._decrypt, payloads)
        return done if done is not None else await in_thread(self._decrypt, payloads)

    def _decrypt(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get("key-id", "")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(
                f"payload was encrypted under key id {key_id!r}, which the codec does not "
                f"have (it knows {', '.join(sorted(self._ciphers)) or 'no key'}); restore "
                "that key to read it", key_id=key_id)
        data = payload.data
        if len(data) < _NONCE_SIZE + _TAG_SIZE:
            raise PayloadTamperedError(f"encrypted payload (key id {key_id!r}) is truncated: "
                                       f"{len(data)} bytes", key_id=key_id)
        try:
            plain = cipher.decrypt(data[:_NONCE_SIZE], data[_NONCE_SIZE:], self._tag(key_id)[1])
        except self._invalid_tag:
            raise PayloadTamperedError(
                f"encrypted payload (key id {key_id!r}) failed authentication: it was "
                "changed after encryption, or encrypted under another key with this id",
                key_id=key_id) from None
        return from_stored(plain)


def _check_key_id(key_id: object) -> None:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise CodecConfigError(f"key id {key_id!r} must be 1-64 characters of "
                               "[A-Za-z0-9._-], starting with a letter or digit")


def parse_keys(text: str) -> dict[str, bytes]:
    """Parse ``"id:base64,id:base64"`` (the ``DURO_KEYS`` format) into keys by id.

    Raises:
        CodecConfigError: Empty, an entry without ``:``, a repeated id, a bad id, a value
            that is not base64 or not 32 bytes. The message never shows key material.
    """
    keys: dict[str, bytes] = {}
    for n, entry in enumerate(text.split(","), 1):
        entry = entry.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep:
            raise CodecConfigError(f"{KEYS_VAR} entry {n} is not 'key_id:base64key'")
        _check_key_id(key_id)
        if key_id in keys:
            raise CodecConfigError(f"{KEYS_VAR} names key id {key_id!r} twice")
        try:
            key = base64.b64decode(encoded.strip().replace("-", "+").replace("_", "/"),
                                   validate=True)
        except binascii.Error:
            raise CodecConfigError(f"{KEYS_VAR}: key {key_id!r} is not valid base64") from None
        if len(key) != _KEY_SIZE:
            raise CodecConfigError(
                f"{KEYS_VAR}: key {key_id!r} is {len(key)} bytes, AES-256 needs {_KEY_SIZE}")
        keys[key_id] = key
    if not keys:
        raise CodecConfigError(f"{KEYS_VAR} is empty: set it to 'key_id:base64key[,...]'")
    return keys
