"""How the durable steps of a pydantic-ai agent are declared (retries, limits)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from duro.errors import InvalidArgumentError
from duro.step import RetryPolicy

__all__ = ["StepConfig"]


@dataclass(frozen=True, kw_only=True)
class StepConfig:
    """The options of the duro steps an agent's operations run as (``@duro.step``'s).

    Attributes:
        retry: The steps' retry policy (None: duro's default, 3 attempts).
        timeout: Limit of one attempt, in seconds or a timedelta.
        at_most_once: Never run an attempt twice (a worker lost mid-call makes the
            workflow's ``await`` raise ``duro.StepOutcomeUnknownError``).
        budgeted: Check the run's budgets (``duro.Budget``) before each attempt.
    """

    retry: RetryPolicy | None = None
    timeout: float | timedelta | None = None
    at_most_once: bool = False
    budgeted: bool = False

    def __post_init__(self) -> None:
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise InvalidArgumentError(f"retry must be a duro.RetryPolicy, not {self.retry!r}")
        for name in ("at_most_once", "budgeted"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(f"{name} must be True or False, "
                                           f"not {getattr(self, name)!r}")
