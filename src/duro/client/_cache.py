"""``client.cache``: the durable step cache of the client's namespace — list it, drop
entries (by step, by scope, all, or only the expired ones).

Entries are made by workers (``@duro.step(cache=duro.Cache(...))``, docs/agents.md);
here they are only counted and deleted, never read: their results may be encrypted.
"""

from __future__ import annotations

import builtins
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from duro._checks import check_id, shown
from duro._clock import iso, parse_time, utc
from duro.errors import InvalidArgumentError
from duro.step._cache import GLOBAL_SCOPE, MAX_SCOPE_LENGTH
from duro.store._cache import CacheGroup

if TYPE_CHECKING:
    from duro.client._client import Client

__all__ = ["CacheInfo", "StepCache", "check_scope"]


def check_scope(scope: object) -> str | None:
    """A scope filter: None (any scope), ``""`` (the global scope) or a scope key.

    Raises:
        InvalidArgumentError: Not a string, or too long.
    """
    if scope is None or scope == GLOBAL_SCOPE:
        return scope
    if not isinstance(scope, str):
        raise InvalidArgumentError(f"cache scope must be a string, not {shown(scope)}")
    return check_id(scope, "cache scope", limit=MAX_SCOPE_LENGTH)


@dataclass(frozen=True, kw_only=True)
class CacheInfo:
    """The cached results of one step in one scope: how many, how many have expired
    (ignored until the workers' sweep deletes them), the oldest and newest."""

    namespace: str
    step: str
    scope: str
    """The scope key; ``""`` is the global scope."""
    entries: int
    expired: int
    oldest: dt.datetime
    newest: dt.datetime

    @classmethod
    def from_group(cls, group: CacheGroup) -> CacheInfo:
        oldest, newest = utc(group.oldest), utc(group.newest)
        assert oldest is not None and newest is not None
        return cls(namespace=group.namespace, step=group.step, scope=group.scope,
                   entries=group.entries, expired=group.expired, oldest=oldest,
                   newest=newest)

    def to_json(self) -> dict[str, Any]:
        """As JSON (``duro cache ls --json``, ``GET /v1/cache``)."""
        return {"namespace": self.namespace, "step": self.step, "scope": self.scope,
                "entries": self.entries, "expired": self.expired,
                "oldest": iso(self.oldest), "newest": iso(self.newest)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CacheInfo:
        oldest, newest = parse_time(raw["oldest"]), parse_time(raw["newest"])
        assert oldest is not None and newest is not None
        return cls(namespace=str(raw["namespace"]), step=str(raw["step"]),
                   scope=str(raw["scope"]), entries=int(raw["entries"]),
                   expired=int(raw["expired"]), oldest=oldest, newest=newest)


class StepCache:
    """The durable step cache of the client's namespace: ``client.cache``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def list(self, *, step: str | None = None,
                   scope: str | None = None) -> builtins.list[CacheInfo]:
        """Entry counts per step and scope (of ``step``/``scope`` if given).

        Raises:
            InvalidArgumentError: A bad step name or scope.
        """
        step, scope = _filters(step, scope)
        client = self._client
        groups = await client.store.cache_list(now=client.clock.now(),
                                               namespace=client.namespace, step=step,
                                               scope=scope)
        return [CacheInfo.from_group(g) for g in groups]

    async def invalidate(self, *, step: str | None = None, scope: str | None = None,
                         expired: bool = False) -> int:
        """Delete cached results: of ``step`` (its name), in ``scope`` (a scope key;
        ``""``: the global scope), both, or (neither) every one of the namespace;
        ``expired``: only those past their ttl. Returns how many went. The next call of
        the step runs it.

        Raises:
            InvalidArgumentError: A bad step name or scope.
        """
        step, scope = _filters(step, scope)
        if not isinstance(expired, bool):
            raise InvalidArgumentError(f"expired must be True or False, not {shown(expired)}")
        client = self._client
        return await client.store.cache_invalidate(
            namespace=client.namespace, step=step, scope=scope,
            expired_at=client.clock.now() if expired else None)

    async def clear(self) -> int:
        """Delete every cached result of the namespace; returns how many went."""
        return await self.invalidate()


def _filters(step: object, scope: object) -> tuple[str | None, str | None]:
    return (None if step is None else check_id(step, "step name"), check_scope(scope))
