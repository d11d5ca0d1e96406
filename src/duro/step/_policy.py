"""Retry policies for steps."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import timedelta

from duro._checks import check_count, check_seconds
from duro.errors import InvalidArgumentError, NonRetryableError, SerializationError

__all__ = ["RetryPolicy", "seconds"]


def seconds(value: float | timedelta | None) -> float | None:
    """A duration in seconds from a number or a timedelta (None stays None)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a failing step is retried.

    The delay before attempt ``n + 1`` is ``initial_interval * backoff ** (n - 1)``,
    capped at ``max_interval``, then spread by ``± jitter`` (a fraction). A step that
    raises :class:`~duro.RetryAfterError` waits the delay it asks for instead.

    Args:
        max_attempts: Attempts in all, including the first; ``0`` means no limit.
        initial_interval: Delay before the first retry.
        backoff: Multiplier applied to the delay after each retry.
        max_interval: Upper bound of one delay.
        jitter: Random spread of each delay, as a fraction of it (0 disables).
        non_retryable: Exception types (or qualified type names) that fail at once.
    """

    max_attempts: int = 3
    initial_interval: float | timedelta = 1.0
    backoff: float = 2.0
    max_interval: float | timedelta = 60.0
    jitter: float = 0.1
    non_retryable: tuple[type[BaseException] | str, ...] = field(default=())

    def __post_init__(self) -> None:
        check_count(self.max_attempts, "max_attempts (0 means unlimited)", minimum=0)
        check_seconds(self.initial_interval, "initial_interval", zero=True)
        check_seconds(self.max_interval, "max_interval", zero=True)
        # `not (...)` so that NaN, which fails every comparison, is refused too.
        if not 1 <= self.backoff < math.inf:
            raise InvalidArgumentError(f"backoff must be a finite number of at least 1, "
                                       f"not {self.backoff!r}")
        if not 0 <= self.jitter <= 1:
            raise InvalidArgumentError(f"jitter must be between 0 and 1, not {self.jitter!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay after failed attempt number ``attempt`` (1-based), in seconds."""
        base = seconds(self.initial_interval) or 0.0
        cap = seconds(self.max_interval) or 0.0
        value = min(cap, base * self.backoff ** max(0, attempt - 1))
        if self.jitter and value > 0:
            value *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, value)

    def exhausted(self, attempt: int) -> bool:
        """True when ``attempt`` attempts have used up the policy."""
        return self.max_attempts != 0 and attempt >= self.max_attempts

    def is_retryable(self, exc: BaseException) -> bool:
        """False for errors that must not be retried."""
        if isinstance(exc, (NonRetryableError, SerializationError)):
            return False
        for entry in self.non_retryable:
            if isinstance(entry, str):
                names = {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
                names |= {c.__qualname__ for c in type(exc).__mro__}
                if entry in names:
                    return False
            elif isinstance(exc, entry):
                return False
        return True
