"""``duro.Cache``: a step's durable memo across runs (``@duro.step(cache=...)``).

A cached step's result is kept in the store under a key made of the step's name, the
cache's ``version`` and the step's arguments (their canonical JSON: bound to the
signature with defaults applied, keys sorted, so equal arguments give equal keys), in a
*scope* (one shared memo, or one per tenant...). This module declares the policy and
makes keys; the worker looks them up (``worker/_cache.py``) and the store keeps them
(``store/_cache.py``).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import orjson

from duro._checks import check_id, check_seconds, shown
from duro.errors import InvalidArgumentError
from duro.serde import encode

__all__ = ["GLOBAL_SCOPE", "MAX_SCOPE_LENGTH", "Cache", "CacheScope"]

GLOBAL_SCOPE = ""
"""How the store names the one scope of a ``scope="global"`` cache (no per-key scope is
empty: an empty header or argument is no scope at all, and the call is not cached)."""

MAX_SCOPE_LENGTH = 200
"""Longest scope key, in characters (a tenant id, a user id)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheScope:
    """Where a cached step's scope key comes from (made by :meth:`Cache.header` and
    :meth:`Cache.arg`; a callable given as ``scope`` becomes one too)."""

    kind: Literal["global", "header", "arg", "call"]
    name: str | None = None
    """The header or parameter name."""
    fn: Callable[..., Any] | None = None
    """For ``call``: called with the step's arguments, returns the key."""

    def key(self, bound: Mapping[str, Any], args: tuple[Any, ...],
            kwargs: Mapping[str, Any], headers: Mapping[str, str] | None) -> str | None:
        """The scope key of one call; None: this call has no scope (it is not cached).

        Raises:
            InvalidArgumentError: The key is not a string, or is too long.
            Exception: Whatever a scope function raised.
        """
        if self.kind == "global":
            return GLOBAL_SCOPE
        if self.kind == "header":
            value: Any = (headers or {}).get(self.name or "")
        elif self.kind == "arg":
            value = bound.get(self.name or "")
        else:
            assert self.fn is not None
            value = self.fn(*args, **kwargs)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise InvalidArgumentError(f"a cache scope key must be a string, not {shown(value)}")
        if len(value) > MAX_SCOPE_LENGTH:
            raise InvalidArgumentError(f"cache scope key {shown(value)} is {len(value)} "
                                       f"characters long; at most {MAX_SCOPE_LENGTH} are allowed")
        return value


_GLOBAL = CacheScope(kind="global")


@dataclass(frozen=True, kw_only=True, slots=True, init=False)
class Cache:
    """A step's durable memo across runs: ``@duro.step(cache=duro.Cache(ttl=3600))``.

    Before an attempt, the worker looks for a result stored by an earlier call of the
    same step, version and arguments in the same scope (and namespace); a hit is
    recorded in the history as the step's ``step_completed`` (meta ``cache_hit``, and
    ``cached_from``: the run that stored it), and the function is not called. A miss
    runs the step; a success is stored (failures are not). It is a memo, not a lock:
    two runs that miss at the same time both run the step, and the last one's result
    stays.

    Args:
        ttl: How long an entry serves (seconds or a timedelta, of the engine's clock);
            None: until invalidated.
        scope: ``"global"`` (one memo for every run), :meth:`Cache.header` (one per value
            of a run header, e.g. a tenant), :meth:`Cache.arg` (one per value of a step
            parameter), or a callable taking the step's arguments and returning the key.
            A call whose key is missing, empty or None is not cached (it runs).
        version: Part of the key: change it when the prompt, model or code changes, and
            earlier entries no longer match.

    Raises:
        InvalidArgumentError: A bad ``ttl``, ``scope`` or ``version``.
    """

    ttl: float | None
    scope: CacheScope
    version: str

    def __init__(self, *, ttl: float | timedelta | None = None,
                 scope: str | CacheScope | Callable[..., Any] = "global",
                 version: str | int = "") -> None:
        object.__setattr__(self, "ttl", check_seconds(ttl, "cache ttl"))
        object.__setattr__(self, "scope", _scope_of(scope))
        object.__setattr__(self, "version", _version_of(version))

    @staticmethod
    def header(name: str) -> CacheScope:
        """A scope per value of the run header ``name`` (``start(..., headers=...)``)."""
        return CacheScope(kind="header", name=check_id(name, "cache scope header",
                                                       limit=MAX_SCOPE_LENGTH))

    @staticmethod
    def arg(name: str) -> CacheScope:
        """A scope per value of the step's parameter ``name`` (a string)."""
        return CacheScope(kind="arg", name=check_id(name, "cache scope parameter",
                                                    limit=MAX_SCOPE_LENGTH))

    def check_step(self, signature: inspect.Signature, step: str) -> None:
        """Refuse a scope that names a parameter the step does not have.

        Raises:
            InvalidArgumentError: It does.
        """
        if self.scope.kind == "arg" and self.scope.name not in signature.parameters:
            raise InvalidArgumentError(f"cache scope Cache.arg({self.scope.name!r}): step "
                                       f"{step!r} has no parameter of that name")

    def key_of(self, step: str, signature: inspect.Signature, args: tuple[Any, ...],
               kwargs: Mapping[str, Any],
               headers: Mapping[str, str] | None) -> tuple[str, str] | None:
        """(scope, key) of one call of ``step``; None when the call has no scope.

        The key is the SHA-256 of the step's name, the version and the arguments'
        canonical JSON: bound by name with defaults applied (``f(1)``, ``f(a=1)`` and
        ``f(1, b=2)`` with ``b=2`` the default are one call), object keys sorted.

        Raises:
            SerializationError: The arguments are not JSON.
            InvalidArgumentError: A bad scope key.
        """
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        scope = self.scope.key(bound.arguments, args, kwargs, headers)
        if scope is None:
            return None
        plain = orjson.loads(encode(dict(bound.arguments),
                                    what=f"the arguments of cached step {step!r}"))
        digest = hashlib.sha256()
        for part in (step.encode(), self.version.encode(),
                     orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)):
            digest.update(len(part).to_bytes(8, "big"))  # no two splits hash alike
            digest.update(part)
        return scope, digest.hexdigest()


def _scope_of(scope: object) -> CacheScope:
    if scope == "global":
        return _GLOBAL
    if isinstance(scope, CacheScope):
        return scope
    if isinstance(scope, str):
        raise InvalidArgumentError(
            f"cache scope must be 'global', Cache.header(name), Cache.arg(name) or a "
            f"callable of the step's arguments, not {shown(scope)}")
    if callable(scope):
        return CacheScope(kind="call", fn=scope)
    raise InvalidArgumentError(f"cache scope must be 'global', Cache.header(name), "
                               f"Cache.arg(name) or a callable, not {shown(scope)}")


def _version_of(version: object) -> str:
    if isinstance(version, int) and not isinstance(version, bool):
        return str(version)
    if not isinstance(version, str):
        raise InvalidArgumentError(f"cache version must be a string or an int, "
                                   f"not {shown(version)}")
    if version:
        check_id(version, "cache version", limit=MAX_SCOPE_LENGTH)
    return version
