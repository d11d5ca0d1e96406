"""Shared budgets (:mod:`duro.store._budgets`): admitting a budgeted attempt, charging a
step outcome's spend with it, releasing a reservation, listing and raising limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from duro._history import charges_of
from duro.store._base._dialect import Dialect
from duro.store._base._tx import Tx
from duro.store._budgets import (
    ADMIT,
    BudgetRequest,
    BudgetSpend,
    BudgetVerdict,
    budget_verdict,
    event_spend,
)
from duro.store._records import NewEvent
from duro.store._rows import Row

__all__ = ["Budgets", "settle"]


def _key(namespace: str, key: str, window: float) -> dict[str, Any]:
    return {"namespace": namespace, "key": key, "window": window}


async def _decide(tx: Tx, request: BudgetRequest, run_id: str, op: int,
                  now: float) -> BudgetVerdict:
    where = _key(request.namespace, request.key, request.window)
    row = await tx.one("budget_row", {**where, "period": request.period,
                                      "usd": request.usd, "tokens": request.tokens,
                                      "now": now})
    assert row is not None
    await tx.run("budget_drop_dead", where)
    held = await tx.one("budget_reserved", {**where, "run_id": run_id, "op": op})
    assert held is not None
    override_usd, override_tokens = row["override_usd"], row["override_tokens"]
    return budget_verdict(
        request.key, usd=override_usd if override_usd is not None else request.usd,
        tokens=override_tokens if override_tokens is not None else request.tokens,
        spent_usd=row["spent_usd"], spent_tokens=row["spent_tokens"],
        settled=row["settled"], max_usd=row["max_step_usd"],
        max_tokens=row["max_step_tokens"], others=held["others"],
        reserved_usd=held["usd"], reserved_tokens=held["tokens"])


async def settle(tx: Tx, run_id: str, epoch: int, new_len: int,
                 events: Sequence[NewEvent], now: float) -> None:
    """Add the spend of the step outcomes among ``events`` to the shared budgets their
    meta names (:func:`~duro._history.charges_of`) and release their reservations; in
    the transaction of their fenced append, after it (the spend is written only if the
    fence passed)."""
    for event in events:
        charges = charges_of(event)
        if not charges:
            continue
        usd, tokens = event_spend(event)
        for c in charges:
            where = _key(c.namespace, c.key, c.window)
            await tx.run("budget_settle", {**where, "usd": usd, "tokens": tokens, "now": now,
                                           "run_id": run_id, "epoch": epoch,
                                           "new_len": new_len})
            await tx.run("budget_release", {**where, "run_id": run_id, "op": event.op,
                                            "epoch": epoch})


def _column(row: Row, name: str, default: Any) -> Any:
    try:
        value = row[name]
    except (KeyError, IndexError):  # psycopg's rows, sqlite3's: not in this query
        return default
    return default if value is None else value


def _spend(row: Row) -> BudgetSpend:
    usd, tokens = row["override_usd"], row["override_tokens"]
    return BudgetSpend(
        namespace=row["namespace"], key=row["key"], window_start=row["window_start"],
        period=row["period"], spent_usd=row["spent_usd"], spent_tokens=row["spent_tokens"],
        settled=row["settled"],
        limit_usd=usd if usd is not None else row["limit_usd"],
        limit_tokens=tokens if tokens is not None else row["limit_tokens"],
        in_flight=int(_column(row, "in_flight", 0)),
        reserved_usd=float(_column(row, "reserved_usd", 0.0)),
        updated_at=row["updated_at"])


class Budgets(Dialect):
    """The budget operations of :class:`~duro.store.Store`, once for every dialect."""

    async def admit_budget(self, run_id: str, epoch: int, op: int,
                           requests: Sequence[BudgetRequest], *, now: float) -> BudgetVerdict:
        """See :meth:`duro.store.WorkerStore.admit_budget`."""

        async def op_(tx: Tx) -> BudgetVerdict:
            verdicts = [await _decide(tx, r, run_id, op, now) for r in requests]
            for v in verdicts:
                if v.status != "admit":
                    return v  # nothing reserved: the limits' rows only were touched
            for r, v in zip(requests, verdicts, strict=True):
                await tx.run("budget_reserve", {
                    **_key(r.namespace, r.key, r.window), "run_id": run_id, "op": op,
                    "epoch": epoch, "usd": v.reserve_usd, "tokens": v.reserve_tokens,
                    "now": now})
            return ADMIT

        verdict: BudgetVerdict = await self._write(op_, ambiguous="retry")
        return verdict

    async def release_budget(self, run_id: str, epoch: int, op: int,
                             requests: Sequence[BudgetRequest]) -> None:
        """See :meth:`duro.store.WorkerStore.release_budget`."""

        async def op_(tx: Tx) -> None:
            for r in requests:
                await tx.run("budget_release", {**_key(r.namespace, r.key, r.window),
                                                "run_id": run_id, "op": op, "epoch": epoch})

        await self._write(op_, ambiguous="retry")

    async def list_budgets(self, *, namespace: str | None = None, key: str | None = None,
                           limit: int = 100) -> list[BudgetSpend]:
        """See :meth:`duro.store.ClientStore.list_budgets`."""
        rows = await self._fetch("list_budgets", {"namespace": namespace, "key": key,
                                                  "limit": limit})
        return [_spend(r) for r in rows]

    async def set_budget_limit(self, key: str, *, usd: float | None, tokens: int | None,
                               namespace: str, now: float) -> BudgetSpend | None:
        """See :meth:`duro.store.ClientStore.set_budget_limit`."""

        async def op_(tx: Tx) -> Row | None:
            return await tx.one("budget_set_limit", {"namespace": namespace, "key": key,
                                                     "usd": usd, "tokens": tokens,
                                                     "now": now})

        row = await self._write(op_, ambiguous="retry")
        return None if row is None else _spend(row)
