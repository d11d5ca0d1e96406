"""Schedules declared in code (``duro.schedule(...)``), and the validation shared with
``engine.schedules.create``."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from duro._checks import MAX_ID_LENGTH, check_choice, check_id
from duro.errors import InvalidArgumentError, WorkflowNotFoundError
from duro.schedules._spec import MAX_SPAN, OVERLAP_POLICIES, OverlapPolicy, ScheduleSpec
from duro.serde import encode
from duro.store._schedules import ScheduleDefinition
from duro.workflow._api import Workflow, lookup_workflow

__all__ = ["DEFAULT_CATCH_UP", "MAX_SCHEDULE_ID_LENGTH", "ScheduleDeclaration",
           "build_definition", "declared_schedules", "schedule"]

MAX_SCHEDULE_ID_LENGTH = MAX_ID_LENGTH - 40
"""Room for the tick (``@2024-05-01T08:00:00.123456Z``, or ``@manual-...``) in the
runs' workflow ids, which are limited to ``MAX_ID_LENGTH``."""

DEFAULT_CATCH_UP = timedelta(minutes=1)
"""How late a tick may be found (after downtime) and still start a run."""

_declared: dict[str, ScheduleDeclaration] = {}


@dataclass(frozen=True, kw_only=True)
class ScheduleDeclaration:
    """A schedule declared in code; workers create or update it when they start."""

    schedule_id: str
    workflow_name: str
    spec: ScheduleSpec
    definition: ScheduleDefinition
    paused: bool = False
    """Only for the schedule's creation: later an operator's pause/resume wins."""
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def schedule(
    workflow: Workflow[..., Any] | str,
    *,
    id: str | None = None,
    cron: str | None = None,
    every: float | timedelta | None = None,
    timezone: str = "UTC",
    anchor: float | dt.datetime | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    overlap: OverlapPolicy = "skip",
    catch_up: float | timedelta = DEFAULT_CATCH_UP,
    queue: str | None = None,
    paused: bool = False,
) -> ScheduleDeclaration:
    """Declare a schedule next to its workflow; workers create it when they start.

    A worker that serves the workflow creates the schedule in the database, or updates
    its definition when the code changed (a changed cron, interval or time zone
    recomputes the next tick); an operator's pause stays in force. Removing the
    declaration does not delete the schedule: use ``duro schedule delete``.

    Example::

        @duro.workflow
        async def report(kind: str) -> None: ...

        duro.schedule(report, id="nightly-report", cron="0 2 * * *",
                      timezone="Europe/Berlin", args=["daily"])

    Args:
        workflow: The workflow (or its registered name).
        id: The schedule's id (default: the workflow's name). Runs get workflow ids
            ``<id>@<tick time, UTC ISO 8601>``.
        cron: A 5-field cron expression (or ``@hourly``, ``@daily``...), evaluated on
            the wall clock of ``timezone``.
        every: A fixed interval (seconds or a timedelta) instead of ``cron``.
        timezone: An IANA time zone for ``cron`` (default UTC).
        anchor: For ``every``: a tick time (default: the Unix epoch, so ``every=3600``
            fires on the hour).
        args: The workflow's positional arguments.
        kwargs: Its keyword arguments.
        overlap: ``skip`` (default), ``buffer_one`` or ``allow_all``: what a tick does
            while the previous run is still live.
        catch_up: After downtime, ticks missed by at most this long still start a run
            (each once); older ones are skipped and counted. Default one minute.
        queue: The queue of the runs (default: the workflow's).
        paused: Create the schedule paused.

    Raises:
        InvalidArgumentError: (a ``ValueError``) A bad id (empty, with control
            characters or ``@``, over 960 characters), a cron expression that never
            fires within five years, an unknown overlap policy, a bad catch-up, anchor
            or queue.
        ValueError: A bad expression, interval or time zone.
        WorkflowArgumentsError: (a ``TypeError``) The arguments do not fit the
            workflow's signature or type hints.
        SerializationError: An argument cannot be stored as JSON (or is NaN/Infinity).
    """
    name = workflow if isinstance(workflow, str) else getattr(workflow, "name", None)
    schedule_id = id if id is not None else name
    if not isinstance(schedule_id, str):
        raise TypeError(f"expected a @duro.workflow or its name, got {workflow!r}")
    definition, spec = build_definition(
        schedule_id, workflow, args, kwargs, cron=cron, every=every, timezone=timezone,
        anchor=anchor, overlap=overlap, catch_up=catch_up, queue=queue, source="code")
    declaration = ScheduleDeclaration(
        schedule_id=schedule_id, workflow_name=definition.workflow_name, spec=spec,
        definition=definition, paused=bool(paused), args=tuple(args), kwargs=dict(kwargs or {}))
    _declared[schedule_id] = declaration
    return declaration


def declared_schedules() -> dict[str, ScheduleDeclaration]:
    """The schedules declared in code so far, by id."""
    return dict(_declared)


def forget_declaration(schedule_id: str) -> None:
    """Drop a declaration from this process's registry (tests)."""
    _declared.pop(schedule_id, None)


def build_definition(
    schedule_id: str,
    workflow: Workflow[..., Any] | str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    *,
    cron: str | None,
    every: float | timedelta | None,
    timezone: str,
    anchor: float | dt.datetime | None,
    overlap: str,
    catch_up: float | timedelta,
    queue: str | None,
    source: str,
) -> tuple[ScheduleDefinition, ScheduleSpec]:
    """Validate a schedule's parts and encode its arguments.

    Raises:
        InvalidArgumentError, TypeError, SerializationError: As :func:`schedule`
            documents.
    """
    check_id(schedule_id, "schedule id", limit=MAX_SCHEDULE_ID_LENGTH)
    if "@" in schedule_id or schedule_id != schedule_id.strip():
        raise InvalidArgumentError(
            f"schedule id {schedule_id!r} must not contain '@' (it separates the schedule "
            "from the tick in its runs' workflow ids) nor start or end with spaces")
    wf = _workflow(workflow)
    name = wf.name if isinstance(wf, Workflow) else wf
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"args must be a list or tuple of arguments, not {args!r}")
    kw = dict(kwargs or {})
    if isinstance(wf, Workflow):
        wf.check_arguments(args, kw, what=f"workflow {name!r} scheduled")
    check_choice(overlap, "overlap", OVERLAP_POLICIES)
    window = catch_up.total_seconds() if isinstance(catch_up, timedelta) else catch_up
    if isinstance(window, bool) or not isinstance(window, (int, float)) \
            or not 0 <= window <= MAX_SPAN:
        raise InvalidArgumentError(
            f"catch_up must be a duration of zero to {MAX_SPAN:g} seconds, not {catch_up!r}")
    period = every.total_seconds() if isinstance(every, timedelta) else every
    if isinstance(anchor, dt.datetime):
        if anchor.tzinfo is None:
            raise InvalidArgumentError("anchor must be an aware datetime (with a time zone)")
        anchor_ts = anchor.timestamp()
    else:
        anchor_ts = 0.0 if anchor is None else float(anchor)
    if anchor is not None and cron is not None:
        raise InvalidArgumentError("anchor applies to every=..., not to cron schedules")
    spec = ScheduleSpec(cron=cron, every=period, timezone=timezone, anchor=anchor_ts)
    spec.check_fires(time.time())
    if queue is not None:
        check_id(queue, "queue")
    run_queue = queue or (wf.queue if isinstance(wf, Workflow) else "") or "default"
    what = f"the arguments of schedule {schedule_id!r}"
    payload = (wf.encode_input(args, kw, what=what) if isinstance(wf, Workflow)
               else encode({"args": list(args), "kwargs": kw}, what=what))
    definition = ScheduleDefinition(
        schedule_id=schedule_id, workflow_name=name, queue=run_queue, input=payload,
        cron=spec.cron,
        every=spec.every, anchor=spec.anchor, timezone=spec.timezone, overlap=overlap,
        catch_up=float(window), source=source)
    return definition, spec


def spec_of(record: ScheduleDefinition | Any) -> ScheduleSpec:
    """The timing of a stored schedule (a definition or a record)."""
    return ScheduleSpec(cron=record.cron, every=record.every, timezone=record.timezone,
                        anchor=record.anchor)


def _workflow(workflow: Workflow[..., Any] | str) -> Workflow[..., Any] | str:
    if isinstance(workflow, Workflow):
        return workflow
    if not isinstance(workflow, str) or not workflow:
        raise TypeError(f"expected a @duro.workflow or its name, got {workflow!r}")
    try:
        return lookup_workflow(workflow)
    except WorkflowNotFoundError:
        # A client without the workflow's code may schedule it by name: a worker that
        # has the code runs it.
        return workflow
