"""The durable step cache (:mod:`duro.store._cache`)."""

from __future__ import annotations

from duro.store._base._dialect import Dialect
from duro.store._cache import CacheEntry, CacheGroup

__all__ = ["Cache"]


class Cache(Dialect):
    """The cache operations of :class:`~duro.store.Store`, once for every dialect."""

    async def cache_get(self, namespace: str, scope: str, key: str, *,
                        now: float) -> CacheEntry | None:
        """See :meth:`duro.store.CacheStore.cache_get`."""
        rows = await self._fetch("cache_get", {"namespace": namespace, "scope": scope,
                                               "key": key, "now": now})
        if not rows:
            return None
        r = rows[0]
        return CacheEntry(namespace=r["namespace"], scope=r["scope"], key=r["key"],
                          step=r["step"], result=bytes(r["result"]), run_id=r["run_id"],
                          created_at=r["created_at"], expires_at=r["expires_at"])

    async def cache_put(self, entry: CacheEntry) -> None:
        """See :meth:`duro.store.CacheStore.cache_put`."""
        await self._simple("cache_put", {
            "namespace": entry.namespace, "scope": entry.scope, "key": entry.key,
            "step": entry.step, "result": entry.result, "run_id": entry.run_id,
            "created_at": entry.created_at, "expires_at": entry.expires_at})

    async def cache_invalidate(self, *, namespace: str | None = None,
                               step: str | None = None, scope: str | None = None,
                               expired_at: float | None = None) -> int:
        """See :meth:`duro.store.CacheStore.cache_invalidate`."""
        return await self._simple("cache_invalidate", {
            "namespace": namespace, "step": step, "scope": scope, "expired": expired_at})

    async def cache_list(self, *, now: float, namespace: str | None = None,
                         step: str | None = None,
                         scope: str | None = None) -> list[CacheGroup]:
        """See :meth:`duro.store.CacheStore.cache_list`."""
        rows = await self._fetch("cache_list", {"now": now, "namespace": namespace,
                                                "step": step, "scope": scope})
        return [CacheGroup(namespace=r["namespace"], step=r["step"], scope=r["scope"],
                           entries=int(r["entries"]), expired=int(r["expired"] or 0),
                           oldest=r["oldest"], newest=r["newest"]) for r in rows]

    async def cache_expire(self, *, now: float, limit: int = 1000) -> int:
        """See :meth:`duro.store.CacheStore.cache_expire`."""
        return await self._simple("cache_expire", {"now": now, "limit": limit})
