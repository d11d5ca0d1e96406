"""API tokens as stored: who may call ``duro serve``, in which namespace, with what scope.

Only a hash of each token's secret is stored (SHA-256: the secrets are 256 random bits,
so a slow password hash would add nothing but latency to every request); the secret is
shown once, when the token is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["SCOPES", "TokenRecord", "TokenStore"]

SCOPES = ("read", "write", "admin")
"""Scopes, each including those before it: ``read`` looks, ``write`` also starts and
signals, ``admin`` also terminates, resets, deletes schedules and manages tokens."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenRecord:
    """One API token as stored (its secret's hash, never the secret)."""

    token_id: str
    name: str
    namespace: str
    scope: str
    secret_hash: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None


@runtime_checkable
class TokenStore(Protocol):
    """API tokens, stored in the database."""

    async def create_token(self, token: TokenRecord) -> None:
        """Store a new token.

        Raises:
            InvalidArgumentError: Its id is taken (ids are random: a caller retries).
        """
        ...

    async def get_token(self, token_id: str) -> TokenRecord | None:
        """The token of this id, revoked or not; None if there is none."""
        ...

    async def list_tokens(self, *, namespace: str | None = None) -> list[TokenRecord]:
        """Every token (of ``namespace``, if given), oldest first."""
        ...

    async def revoke_token(self, token_id: str, *, now: float) -> bool:
        """Revoke a token; False if there is no live token of this id."""
        ...
