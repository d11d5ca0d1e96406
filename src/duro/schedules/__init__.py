"""Schedules: start a workflow on a cron expression (in a time zone) or a fixed interval,
exactly once per tick across all workers.

Create them at run time with ``engine.schedules.create(...)`` or the ``duro schedule``
command, or declare them next to the workflow with :func:`schedule` (workers create or
update them when they start).
"""

from __future__ import annotations

from duro.schedules._declare import (
    DEFAULT_CATCH_UP,
    ScheduleDeclaration,
    declared_schedules,
    schedule,
)
from duro.schedules._errors import ScheduleAlreadyExistsError, ScheduleNotFoundError
from duro.schedules._spec import OverlapPolicy, ScheduleSpec, tick_workflow_id

__all__ = [
    "DEFAULT_CATCH_UP",
    "OverlapPolicy",
    "ScheduleAlreadyExistsError",
    "ScheduleDeclaration",
    "ScheduleNotFoundError",
    "ScheduleSpec",
    "declared_schedules",
    "schedule",
    "tick_workflow_id",
]
