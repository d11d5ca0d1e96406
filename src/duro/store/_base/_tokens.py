"""API tokens (:mod:`duro.store._tokens`)."""

from __future__ import annotations

from duro.errors import InvalidArgumentError
from duro.store._base._dialect import Dialect
from duro.store._base._tx import Then, Tx
from duro.store._rows import token_record
from duro.store._tokens import TokenRecord

__all__ = ["Tokens"]


class Tokens(Dialect):
    """The token operations of :class:`~duro.store.Store`, once for every dialect."""

    async def create_token(self, token: TokenRecord) -> None:
        """See :meth:`duro.store.TokenStore.create_token`."""
        params = {"token_id": token.token_id, "name": token.name,
                  "namespace": token.namespace, "scope": token.scope,
                  "secret_hash": token.secret_hash, "created_at": token.created_at,
                  "expires_at": token.expires_at}

        async def op(tx: Tx) -> Then[int]:
            done = await tx.later("insert_token", params)

            async def finish() -> int:
                return done.rowcount()

            return Then(finish)

        if await self._write(op) != 1:
            raise InvalidArgumentError(f"token id {token.token_id!r} is taken")

    async def get_token(self, token_id: str) -> TokenRecord | None:
        """See :meth:`duro.store.TokenStore.get_token`."""
        rows = await self._fetch("token_by_id", {"token_id": token_id})
        return token_record(rows[0]) if rows else None

    async def list_tokens(self, *, namespace: str | None = None) -> list[TokenRecord]:
        """See :meth:`duro.store.TokenStore.list_tokens`."""
        return [token_record(r)
                for r in await self._fetch("list_tokens", {"namespace": namespace})]

    async def revoke_token(self, token_id: str, *, now: float) -> bool:
        """See :meth:`duro.store.TokenStore.revoke_token`."""
        return await self._simple("revoke_token", {"token_id": token_id, "now": now}) == 1
