"""Errors of the schedule API."""

from __future__ import annotations

from duro.errors import DuroError

__all__ = ["ScheduleAlreadyExistsError", "ScheduleNotFoundError"]


class ScheduleNotFoundError(DuroError):
    """No schedule has this id."""


class ScheduleAlreadyExistsError(DuroError):
    """A schedule with this id exists already."""
