"""The shared-budget admission rule (store/_budgets.budget_verdict) and what an outcome
charges, without a database."""

from __future__ import annotations

from typing import Any

from duro._history import AttemptMeta, BudgetCharge, EventKind, NewEvent, charges_of, spend_of
from duro.store._budgets import budget_verdict, event_spend


def _verdict(**given: Any) -> str:
    args: dict[str, Any] = dict(usd=1.0, tokens=None, spent_usd=0.0, spent_tokens=0,
                                settled=0, max_usd=0.0, max_tokens=0, others=0,
                                reserved_usd=0.0, reserved_tokens=0)
    args.update(given)
    return budget_verdict("k", **args).status


def test_spent_is_exceeded_whatever_is_in_flight() -> None:
    assert _verdict(spent_usd=1.0) == "exceeded"
    assert _verdict(spent_usd=1.2, others=3) == "exceeded"
    assert _verdict(usd=None, tokens=100, spent_tokens=100) == "exceeded"
    over = budget_verdict("k", usd=None, tokens=10, spent_usd=5.0, spent_tokens=12,
                          settled=1, max_usd=0.0, max_tokens=0, others=0, reserved_usd=0.0,
                          reserved_tokens=0)
    assert (over.unit, over.limit, over.spent) == ("tokens", 10.0, 12.0)


def test_without_an_estimate_one_attempt_at_a_time() -> None:
    assert _verdict() == "admit"
    assert _verdict(others=1) == "wait"


def test_an_attempt_fits_with_the_reservations_or_waits() -> None:
    fits = dict(settled=4, max_usd=0.25, spent_usd=0.25)
    assert _verdict(**fits, others=2, reserved_usd=0.5) == "admit"  # 0.25+0.5+0.25 = 1
    assert _verdict(**fits, others=3, reserved_usd=0.75) == "wait"
    # Alone, an attempt runs while anything is left, even if it may pass the limit:
    # the spend passes the budget by one attempt's cost at most.
    assert _verdict(settled=4, max_usd=0.25, spent_usd=0.9) == "admit"
    admitted = budget_verdict("k", usd=1.0, tokens=None, spent_usd=0.0, spent_tokens=0,
                              settled=1, max_usd=0.25, max_tokens=7, others=0,
                              reserved_usd=0.0, reserved_tokens=0)
    assert (admitted.reserve_usd, admitted.reserve_tokens) == (0.25, 7)


def test_what_an_outcome_charges() -> None:
    usage = [{"model": "m", "input_tokens": 10, "output_tokens": 5, "cost": 0.5},
             {"model": "n", "input_tokens": 1, "output_tokens": 0, "cost": None}]
    assert spend_of(usage) == (0.5, 16)
    charge = BudgetCharge(key="tenant:a", window=86400.0, namespace="ns")
    meta = AttemptMeta.encode(1, 0.1, usage=usage, charges=[charge])
    event = NewEvent(kind=EventKind.STEP_COMPLETED, ts=1.0, op=3, name="s", meta=meta)
    assert charges_of(event) == (charge,)
    assert event_spend(event) == (0.5, 16)
    plain = NewEvent(kind=EventKind.STEP_COMPLETED, ts=1.0, op=3, name="s",
                     meta=AttemptMeta.encode(1, 0.1, usage=usage))
    assert charges_of(plain) == ()
    assert AttemptMeta.decode(meta).charges == (charge,)
