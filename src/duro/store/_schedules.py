"""The store's schedule operations (``ScheduleStore``) and the records they use.

A schedule is a row: what to start (workflow name and encoded arguments), when (a cron
expression in a time zone, or a fixed interval), its policies, and where it stands
(``next_fire_at``, the last run it started, a buffered tick, counters). Firing a tick
is one transaction that advances ``next_fire_at`` with a compare-and-set on its
previous value *and* creates the tick's run under a deterministic workflow id, so
however many workers race, each tick starts one run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from duro.store._records import RunRecord

__all__ = ["FireResult", "ScheduleDefinition", "ScheduleRecord", "ScheduleStore"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleDefinition:
    """What a schedule is: set when it is created, and by code declarations."""

    schedule_id: str
    workflow_name: str
    queue: str
    """The queue the runs are placed in."""
    input: bytes
    """The runs' input payload (``{"args": [...], "kwargs": {...}}`` encoded)."""
    cron: str | None
    every: float | None
    anchor: float
    timezone: str
    overlap: str
    catch_up: float
    """Seconds: ticks found due later than this (after downtime) are skipped."""
    source: str = "api"
    """``api`` (created by a client or the CLI) or ``code`` (declared next to the workflow)."""
    namespace: str = "default"
    """The namespace the schedule and the runs it starts belong to."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleRecord:
    """A schedule as stored: its definition and where it stands."""

    schedule_id: str
    workflow_name: str
    queue: str
    """The queue the runs are placed in."""
    input: bytes
    cron: str | None
    every: float | None
    anchor: float
    timezone: str
    overlap: str
    catch_up: float
    source: str
    paused: bool
    note: str | None
    next_fire_at: float | None
    """The next tick not yet handled (None: the expression never matches again)."""
    last_fire_at: float | None
    """The latest tick that started a run."""
    last_workflow_id: str | None
    """The workflow id of the run the schedule started last (the overlap policy's
    "previous run")."""
    buffered_at: float | None
    """A tick waiting for the previous run to end (``buffer_one``)."""
    fired: int
    """Runs started for ticks."""
    missed: int
    """Ticks skipped because they were found due later than the catch-up window."""
    overlap_skipped: int
    """Ticks skipped because the previous run was still live."""
    created_at: float
    updated_at: float
    namespace: str = "default"
    """The namespace the schedule and the runs it starts belong to."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FireResult:
    """What firing a schedule's due ticks did."""

    started: tuple[RunRecord, ...]
    """Runs created (a tick whose run already existed is not among them)."""
    buffered_at: float | None
    """The tick now waiting for the previous run to end, if any."""
    overlap_skipped: int
    missed: int


@runtime_checkable
class ScheduleStore(Protocol):
    """Schedules, stored in the database (see the module docstring).

    A schedule is in its definition's namespace, and so are the runs it starts. The
    ``namespace`` a client passes scopes it as for runs (see ``duro.store._protocol``):
    a schedule of another namespace is as if there were none. Firing ticks (a worker's
    job) sees every namespace."""

    async def create_schedule(
        self, definition: ScheduleDefinition, *, paused: bool, note: str | None,
        next_fire_at: float | None, now: float,
    ) -> ScheduleRecord:
        """Create a schedule.

        Raises:
            ScheduleAlreadyExistsError: The id is taken.
        """
        ...

    async def upsert_schedule(
        self, definition: ScheduleDefinition, *, paused: bool, next_fire_at: float | None,
        now: float,
    ) -> tuple[ScheduleRecord, str]:
        """Create a schedule declared in code, or bring an existing one up to date.

        An existing schedule keeps its paused state, note, counters and, unless its
        timing (cron, interval, anchor, time zone) changed, its ``next_fire_at``.
        ``paused`` only applies when the schedule is created. Returns the schedule and
        ``"created"``, ``"updated"`` or ``"unchanged"``.
        """
        ...

    async def update_schedule(
        self, schedule_id: str,
        change: Callable[[ScheduleRecord], tuple[ScheduleDefinition, float | None]], *,
        now: float, namespace: str | None = None,
    ) -> ScheduleRecord:
        """Change a schedule's definition in place, in one transaction: ``change`` gets
        the schedule as stored (locked) and gives its new definition and the next tick
        to use if the timing changed (it must not do I/O). The paused state, note and
        counters stay; so does ``next_fire_at`` unless the timing changed.

        Raises:
            ScheduleNotFoundError: No such schedule (in ``namespace``).
            Exception: Whatever ``change`` raised (nothing is changed).
        """
        ...

    async def get_schedule(self, schedule_id: str, *,
                           namespace: str | None = None) -> ScheduleRecord | None:
        """One schedule (None if it is of another namespace than ``namespace``)."""
        ...

    async def list_schedules(self, *, namespace: str | None = None) -> list[ScheduleRecord]:
        """Every schedule of ``namespace`` (None: of all), by id."""
        ...

    async def pause_schedule(self, schedule_id: str, *, note: str | None, now: float,
                             namespace: str | None = None) -> ScheduleRecord:
        """Stop firing ticks (a buffered tick is kept for the resume).

        Raises:
            ScheduleNotFoundError: No such schedule.
        """
        ...

    async def resume_schedule(self, schedule_id: str, *, note: str | None,
                              next_fire_at: float | None, now: float,
                              namespace: str | None = None) -> ScheduleRecord:
        """Fire ticks again, from ``next_fire_at`` (the ticks of the pause are not
        caught up). Resuming a schedule that is not paused changes nothing.

        Raises:
            ScheduleNotFoundError: No such schedule.
        """
        ...

    async def delete_schedule(self, schedule_id: str, *,
                              namespace: str | None = None) -> bool:
        """Delete a schedule (its runs stay); False if there was none (in ``namespace``)."""
        ...

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        """Unpaused schedules with a tick due at ``now``, or with a buffered tick whose
        previous run has ended."""
        ...

    async def next_schedule_due(self) -> float | None:
        """The earliest ``next_fire_at`` of the unpaused schedules."""
        ...

    async def fire_schedule(
        self, schedule_id: str, *, expected_next: float | None, next_fire_at: float | None,
        ticks: Sequence[float], missed: int, now: float,
    ) -> FireResult | None:
        """Handle due ticks in one transaction, if the schedule is unpaused and its
        ``next_fire_at`` is still ``expected_next`` (else None: another worker did it).

        First a buffered tick whose previous run ended starts; then each tick starts a
        run (workflow id ``<schedule>@<tick>``) unless the overlap policy skips or
        buffers it; ``next_fire_at`` becomes ``next_fire_at``; ``missed`` is added to
        the schedule's count of ticks skipped by the catch-up window.
        """
        ...

    async def trigger_schedule(self, schedule_id: str, *, workflow_id: str, now: float,
                               namespace: str | None = None) -> RunRecord:
        """Start a run of the schedule now (paused or not), regardless of its overlap
        policy; it becomes the schedule's previous run.

        Raises:
            ScheduleNotFoundError: No such schedule.
            WorkflowAlreadyStartedError: The workflow id is taken by a live run.
        """
        ...

    async def backfill_schedule(self, schedule_id: str, *, ticks: Sequence[float], now: float,
                                namespace: str | None = None) -> list[tuple[RunRecord, bool]]:
        """Start a run for each tick (workflow id ``<schedule>@<tick>``) unless that
        tick's run exists already; returns each tick's run and whether it was created.

        Raises:
            ScheduleNotFoundError: No such schedule.
        """
        ...
