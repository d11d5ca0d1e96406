"""The durable step cache as stored: results of ``@duro.step(cache=...)`` steps across
runs (``duro/step/_cache.py`` makes the keys, ``worker/_cache.py`` looks them up).

An entry's ``result`` is the payload in its stored form (the codecs applied), so the
cache holds nothing the history would not hold in the clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["CacheEntry", "CacheGroup", "CacheStore"]


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheEntry:
    """One cached step result."""

    namespace: str
    scope: str
    """The scope key (``""``: the global scope)."""
    key: str
    """SHA-256 (hex) of the step's name, the cache version and the arguments."""
    step: str
    result: bytes
    run_id: str
    """The run whose attempt stored it."""
    created_at: float
    expires_at: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheGroup:
    """The entries of one step in one scope (a listing's line)."""

    namespace: str
    step: str
    scope: str
    entries: int
    expired: int
    """Of ``entries``, those past their ``ttl`` (ignored; deleted by the next sweep)."""
    oldest: float
    newest: float


@runtime_checkable
class CacheStore(Protocol):
    """The step cache, stored in the database."""

    async def cache_get(self, namespace: str, scope: str, key: str, *,
                        now: float) -> CacheEntry | None:
        """The live entry (not expired at ``now``) of this key, or None."""
        ...

    async def cache_put(self, entry: CacheEntry) -> None:
        """Store an entry, replacing the one of the same key (a memo: the last wins)."""
        ...

    async def cache_invalidate(self, *, namespace: str | None = None,
                               step: str | None = None, scope: str | None = None,
                               expired_at: float | None = None) -> int:
        """Delete the entries that match (None: any; ``expired_at``: only those expired
        at that time); returns how many went."""
        ...

    async def cache_list(self, *, now: float, namespace: str | None = None,
                         step: str | None = None,
                         scope: str | None = None) -> list[CacheGroup]:
        """Entry counts per namespace, step and scope, in that order."""
        ...

    async def cache_expire(self, *, now: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` entries expired at ``now``; returns how many went."""
        ...
