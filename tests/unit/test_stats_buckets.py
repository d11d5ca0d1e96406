"""The stats read's bucketed percentiles (store/_base/_stats.py): from a histogram of
log-scale buckets (the SQL's ``floor(ln(v) / ln(1.05))``, computed here independently),
each reported percentile is within ``BUCKET_ERROR`` of the exact nearest-rank value."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from duro.store._base._stats import BUCKET_ERROR, GAMMA, _percentiles, bucket_value


def _bucket(v: float) -> int:
    return -999_999 if v <= 0 else math.floor(math.log(v) / math.log(GAMMA))


@pytest.mark.parametrize("seed", range(5))
def test_bucketed_percentiles_stay_within_the_bound(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(-3, 2) for _ in range(rng.randint(1, 3000))]
    values += [0.0] * rng.randint(0, 50)
    got = _percentiles(Counter(_bucket(v) for v in values))
    ordered = sorted(values)
    assert got.count == len(values)
    for p in (50, 95, 99):
        exact = ordered[math.ceil(p * len(ordered) / 100) - 1]
        shown = getattr(got, f"p{p}")
        assert shown is not None
        assert abs(shown - exact) <= BUCKET_ERROR * exact * (1 + 1e-9)


def test_bucket_bounds() -> None:
    assert abs(BUCKET_ERROR - 0.0247) < 1e-4
    assert bucket_value(-999_999) == 0.0
    assert bucket_value(0) == pytest.approx(math.sqrt(GAMMA))
    assert _percentiles(Counter()).count == 0 and _percentiles(Counter()).p50 is None
