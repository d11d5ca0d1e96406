"""Retry policy arithmetic and classification."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

import duro
from duro.step._policy import RetryPolicy


def test_exponential_backoff_capped_without_jitter() -> None:
    policy = RetryPolicy(initial_interval=timedelta(seconds=1), backoff=2, max_interval=5,
                         jitter=0)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(initial_interval=10, jitter=0.2)
    rng = random.Random(1)
    delays = [policy.delay(1, rng) for _ in range(200)]
    assert all(8 <= d <= 12 for d in delays) and len(set(delays)) > 100


def test_attempt_limits() -> None:
    assert RetryPolicy(max_attempts=3).exhausted(3)
    assert not RetryPolicy(max_attempts=3).exhausted(2)
    assert not RetryPolicy(max_attempts=0).exhausted(10_000)


class Declined(Exception):
    pass


class SubDeclined(Declined):
    pass


def test_classification() -> None:
    policy = RetryPolicy(non_retryable=(Declined, "KeyError", "tests.unit.test_policy.Other"))
    assert not policy.is_retryable(SubDeclined())
    assert not policy.is_retryable(KeyError("k"))
    assert not policy.is_retryable(duro.NonRetryableError("x"))
    assert not policy.is_retryable(duro.SerializationError("x"))
    assert policy.is_retryable(ValueError())


def test_invalid_policies_are_rejected() -> None:
    for kwargs in ({"max_attempts": -1}, {"backoff": 0.5}, {"jitter": 2},
                   {"initial_interval": -1}):
        with pytest.raises(ValueError):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_after_error_accepts_timedelta() -> None:
    assert duro.RetryAfterError("x", retry_after=timedelta(minutes=2)).retry_after == 120
