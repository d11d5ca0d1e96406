"""``client.budgets``: the shared budgets' spend per key and window, and an operator's
limits (``docs/agents.md``, "Budgets"); ``handle.set_budget`` is in ``_handle.py``."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from duro._checks import check_count, check_id
from duro.budget._budget import check_tokens, check_usd
from duro.errors import InvalidArgumentError
from duro.store._budgets import BudgetSpend

if TYPE_CHECKING:
    from duro.client._client import Client

__all__ = ["Budgets"]


class Budgets:
    """The shared budgets (``duro.Budget(key=...)``) of the client's namespace."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def list(self, key: str | None = None, *, limit: int = 100
                   ) -> builtins.list[BudgetSpend]:
        """The spend of each key (or of ``key``) per window, latest window first: what
        was spent, the limit in force, the attempts in flight.

        Raises:
            InvalidArgumentError: A bad key or limit.
        """
        if key is not None:
            check_id(key, "budget key", limit=200)
        check_count(limit, "limit")
        self._client._require_open()
        return await self._client.store.list_budgets(namespace=self._client.namespace,
                                                     key=key, limit=limit)

    async def set_limit(self, key: str, *, usd: float | None = None,
                        tokens: int | None = None) -> BudgetSpend:
        """Set the limits of ``key``'s current window (its latest), in place of those
        its runs give: raise them to let paused runs go on (they re-check within 30 s),
        or lower them. Both None: back to the runs' own limits.

        Raises:
            InvalidArgumentError: A bad key or limit, or the key has spent nothing yet
                (no window to set).
        """
        check_id(key, "budget key", limit=200)
        usd, tokens = check_usd(usd), check_tokens(tokens)
        self._client._require_open()
        got = await self._client.store.set_budget_limit(
            key, usd=usd, tokens=tokens, namespace=self._client.namespace or "default",
            now=self._client.clock.now())
        if got is None:
            raise InvalidArgumentError(f"budget key {key!r} has no spend recorded yet")
        return got
