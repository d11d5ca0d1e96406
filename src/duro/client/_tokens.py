"""``client.tokens``: API tokens for ``duro serve`` — make, list, revoke, verify.

A token reads ``duro_<id>_<secret>``: the id finds its row, the secret proves it. Only
the secret's SHA-256 is stored, so a copy of the database does not hold usable tokens;
the secret is returned once, by :meth:`Tokens.create`.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from duro._checks import check_id, check_namespace, check_seconds
from duro._clock import iso, utc
from duro.errors import AuthenticationError, InvalidArgumentError, PermissionDeniedError
from duro.store._tokens import SCOPES, TokenRecord, TokenStore

if TYPE_CHECKING:
    from duro.client._client import Client

__all__ = ["SCOPES", "TokenInfo", "Tokens", "scope_allows"]

_TOKEN = re.compile(r"duro_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")



def scope_allows(scope: str, needed: str) -> bool:
    """Whether a token of ``scope`` may do what needs ``needed`` (scopes include those
    before them in :data:`SCOPES`)."""
    return SCOPES.index(scope) >= SCOPES.index(needed)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()



@dataclass(frozen=True, kw_only=True)
class TokenInfo:
    """An API token as the store has it (never its secret). Times are UTC datetimes."""

    token_id: str
    name: str
    namespace: str
    scope: str
    """``read``, ``write`` or ``admin``; each includes those before it."""
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def from_record(cls, record: TokenRecord) -> TokenInfo:
        created = utc(record.created_at)
        assert created is not None
        return cls(token_id=record.token_id, name=record.name, namespace=record.namespace,
                   scope=record.scope, created_at=created,
                   expires_at=utc(record.expires_at), revoked_at=utc(record.revoked_at))

    def to_json(self) -> dict[str, Any]:
        """The token as JSON (``duro token ls --json``)."""
        return {"token_id": self.token_id, "name": self.name, "namespace": self.namespace,
                "scope": self.scope, "created_at": iso(self.created_at),
                "expires_at": iso(self.expires_at), "revoked_at": iso(self.revoked_at)}


class Tokens:
    """API tokens of the client's store: ``client.tokens``."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._checked: TokenStore | None = None

    def _store(self) -> TokenStore:
        self._client._require_open()
        store = self._client.store
        if store is not self._checked:
            # Once per store: a runtime protocol check costs ~10 us (it is on every
            # request of a server that requires tokens).
            if not isinstance(store, TokenStore):
                raise InvalidArgumentError(
                    f"the store {type(store).__name__} keeps no API tokens")
            self._checked = store
        return store

    async def create(self, name: str, *, scope: str = "read", namespace: str = "default",
                     expires_in: float | timedelta | None = None) -> tuple[str, TokenInfo]:
        """Make a token; returns its secret (shown this once: only a hash is stored) and
        what is stored.

        Args:
            name: What it is for (shown by :meth:`list`), e.g. ``"billing webhook"``.
            scope: ``read`` (look), ``write`` (also start, signal, update, cancel) or
                ``admin`` (also terminate, reset, fork, delete schedules).
            namespace: The only namespace it reaches.
            expires_in: Lifetime (seconds or a timedelta); None: until revoked.

        Raises:
            InvalidArgumentError: An empty name, an unknown scope, a bad namespace name, a
                lifetime that is not positive. Nothing is stored.
        """
        check_id(name, "token name", limit=200)
        if scope not in SCOPES:
            raise InvalidArgumentError(f"scope must be one of {', '.join(SCOPES)}, "
                                       f"not {scope!r}")
        check_namespace(namespace)
        lifetime = check_seconds(expires_in, "expires_in")
        store = self._store()
        now = self._client.clock.now()
        secret = secrets.token_urlsafe(32)
        record = TokenRecord(token_id=secrets.token_hex(8), name=name, namespace=namespace,
                             scope=scope, secret_hash=_hash(secret), created_at=now,
                             expires_at=None if lifetime is None else now + lifetime)
        await store.create_token(record)
        return f"duro_{record.token_id}_{secret}", TokenInfo.from_record(record)

    async def list(self, *, namespace: str | None = None) -> builtins.list[TokenInfo]:
        """Every token (of ``namespace``, if given), revoked ones included, oldest first."""
        if namespace is not None:
            check_namespace(namespace)
        return [TokenInfo.from_record(r)
                for r in await self._store().list_tokens(namespace=namespace)]

    async def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token: requests carrying it are refused from now on.

        Raises:
            InvalidArgumentError: No live token has this id.
        """
        check_id(token_id, "token id")
        store = self._store()
        if not await store.revoke_token(token_id, now=self._client.clock.now()):
            raise InvalidArgumentError(f"no live token with id {token_id!r}")
        record = await store.get_token(token_id)
        assert record is not None
        return TokenInfo.from_record(record)

    async def verify(self, token: str, *, scope: str = "read") -> TokenInfo:
        """The token whose secret ``token`` is, if it is live and its scope allows
        ``scope``.

        Raises:
            AuthenticationError: Not a token, unknown, revoked or expired (one error for
                all: a caller learns nothing about which).
            PermissionDeniedError: Valid, but its scope is below ``scope``.
        """
        match = _TOKEN.fullmatch(token)
        record = None if match is None else await self._store().get_token(match.group(1))
        # Compared in constant time, and a hash is computed even for an unknown id, so
        # that timing does not tell which ids exist.
        expected = record.secret_hash if record is not None else _hash("")
        given = _hash(match.group(2)) if match is not None else _hash(token)
        if record is None or not hmac.compare_digest(expected, given):
            raise AuthenticationError("invalid API token")
        # On the stored times (a datetime's microseconds would round the edge).
        now = self._client.clock.now()
        if record.revoked_at is not None or (record.expires_at is not None
                                             and record.expires_at <= now):
            raise AuthenticationError("invalid API token")
        info = TokenInfo.from_record(record)
        if not scope_allows(info.scope, scope):
            raise PermissionDeniedError(
                f"this token's scope is {info.scope!r}; this needs {scope!r}")
        return info
