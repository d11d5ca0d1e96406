"""``duro.record_usage`` and the price table, without a store."""

from __future__ import annotations

import math

import pytest

import duro
from duro.usage._summary import sum_usage


def test_outside_a_step_the_record_is_made_and_stored_nowhere() -> None:
    usage = duro.record_usage(model="gpt-x", input_tokens=3, output_tokens=4, cost=0.5,
                              provider="p")
    assert usage == duro.Usage(model="gpt-x", input_tokens=3, output_tokens=4, cost=0.5,
                               extra={"provider": "p"})
    assert usage.total_tokens == 7
    assert duro.Usage.from_json(usage.to_json()) == usage


@pytest.mark.parametrize("kwargs", [
    {"model": ""}, {"model": 3}, {"model": "m", "input_tokens": -1},
    {"model": "m", "input_tokens": 1.5}, {"model": "m", "output_tokens": True},
    {"model": "m", "cost": -0.1}, {"model": "m", "cost": math.inf},
    {"model": "m", "cost": "1"}, {"model": "m", "blob": object()},
])
def test_bad_usage_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(duro.InvalidArgumentError):
        duro.record_usage(**kwargs)  # type: ignore[arg-type]


def test_prices_set_by_the_application_win_and_are_checked() -> None:
    duro.set_model_prices({"unit-model": duro.ModelPrice(input_per_mtok=2.0,
                                                         output_per_mtok=8.0)})
    usage = duro.record_usage(model="unit-model", input_tokens=1_000_000,
                              output_tokens=500_000)
    assert usage.cost == pytest.approx(2.0 + 4.0)
    assert duro.record_usage(model="unit-model", cost=0.0).cost == 0.0  # given: kept
    with pytest.raises(duro.InvalidArgumentError):
        duro.ModelPrice(input_per_mtok=-1, output_per_mtok=0)
    with pytest.raises(duro.InvalidArgumentError):
        duro.set_model_prices({"": duro.ModelPrice(input_per_mtok=1, output_per_mtok=1)})
    with pytest.raises(duro.InvalidArgumentError):
        duro.set_model_prices({"m": 3.0})  # type: ignore[dict-item]


def test_genai_prices_prices_known_models_when_installed() -> None:
    pytest.importorskip("genai_prices")
    usage = duro.record_usage(model="gpt-4o", input_tokens=1000, output_tokens=100,
                              provider="openai")
    assert usage.cost is not None and usage.cost > 0
    assert duro.record_usage(model="no-such-model-anywhere-xyz").cost is None


def test_summing_skips_damaged_usage() -> None:
    good = b'{"attempt":1,"usage":[{"model":"m","input_tokens":5,"output_tokens":1,"cost":0.5}]}'
    damaged = b'{"attempt":1,"usage":[3,{"model":"m","input_tokens":"x","cost":"y"}]}'
    total = sum_usage([("step_completed", "a", good), ("step_failed", "a", damaged),
                       ("signal_received", "s", good), ("step_completed", "b", None)])
    assert total.total.calls == 2
    assert total.total.input_tokens == 5
    assert total.total.unpriced_calls == 1
    assert total.by_step["a"].cost == 0.5
