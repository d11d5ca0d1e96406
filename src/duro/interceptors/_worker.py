"""Worker interceptors: what a worker does for runs, seen by a chain of objects.

Like client interceptors (``_client.py``), an interceptor overrides the hooks it needs;
each gets the input (a frozen record: change it with :func:`dataclasses.replace`) and
``next``, the rest of the chain down to the worker's own code. Hooks not overridden
cost nothing.

Two kinds of hook, by where they run:

* :meth:`WorkerInterceptor.execute_step` runs where a step attempt runs (the run's
  worker, or the worker serving the step's queue), once per attempt, retries included.
  It may do anything a step may do (I/O, clocks): open a trace span, check a tenant.
  :meth:`WorkerInterceptor.attempt_started` is its lighter form for hooks that only
  watch (a span current while the attempt runs): told of the attempt's start and end.
* :meth:`WorkerInterceptor.events_recorded` is a notification, not a chain: the
  worker tells each interceptor that overrides it what it has just committed to a
  run's history (once: a replay commits nothing). Metrics and traces are built on it.
  :meth:`WorkerInterceptor.schedule_fired` is one too, for a schedule's fired ticks.
* The others run inside the workflow, on its deterministic loop, and are called again
  whenever the run is replayed: they must be deterministic, like workflow code (no I/O,
  no clocks, no randomness; ``duro.info().is_replaying`` tells a replay). They see the
  workflow's execution, and each signal, update and query it handles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from duro._history import NewEvent
    from duro.step import StepInfo

__all__ = [
    "EventsRecordedInput",
    "ExecuteStepInput",
    "ExecuteWorkflowInput",
    "HandleQueryInput",
    "HandleSignalInput",
    "HandleUpdateInput",
    "ScheduleFiredInput",
    "WorkerInterceptor",
    "events_recorded_input",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecuteWorkflowInput:
    """A run's workflow function about to run (at the run's start, and at each replay)."""

    workflow: str
    workflow_id: str
    run_id: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    headers: Mapping[str, str]
    """The run's headers (``duro.info().headers``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecuteStepInput:
    """One attempt of a step about to run."""

    step: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    info: StepInfo
    """The attempt (``duro.step_info()``): run, attempt number, the run's headers."""


@dataclass(frozen=True, kw_only=True, slots=True)
class HandleSignalInput:
    """A recorded signal delivered to the workflow (to its handler, a waiter, or its
    buffer)."""

    name: str
    payload: Any
    headers: Mapping[str, str]
    """The sender's headers (``Client.signal(..., headers=)``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class HandleUpdateInput:
    """An accepted update about to run its handler."""

    name: str
    update_id: str
    args: tuple[Any, ...]
    headers: Mapping[str, str]
    """The sender's headers (``Client.update(..., headers=)``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class HandleQueryInput:
    """A query about to be answered by its handler (read-only: nothing is recorded)."""

    name: str
    args: tuple[Any, ...]
    headers: Mapping[str, str]
    """The asker's headers (``Client.query(..., headers=)``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EventsRecordedInput:
    """Events a worker has just committed to a run's history, in order."""

    workflow: str
    """The workflow's registered name."""
    workflow_id: str
    run_id: str
    namespace: str
    headers: Mapping[str, str]
    events: Sequence[NewEvent]
    """What was committed (``kind``, ``ts``, ``op``, ``name``, ``meta``; payloads in
    stored form, possibly encoded: read them through the client, not here)."""
    timers_due: Mapping[int, float]
    """For each ``timer_fired`` event among them (by its ``op``): when the timer was due
    (epoch seconds), so ``event.ts - due`` is how late it fired."""
    timers_set: Mapping[int, float] = field(default_factory=dict)
    """For the same timers: when the workflow set each (its time then)."""
    started_at: float = 0.0
    """When the run started (its ``run_started`` event's time)."""
    parent_run_id: str | None = None
    """The run that started this one as a child, if any."""


_new = object.__new__
(_set_workflow, _set_workflow_id, _set_run_id, _set_namespace, _set_headers, _set_events,
 _set_timers_due, _set_timers_set, _set_started_at, _set_parent_run_id) = (
    EventsRecordedInput.__dict__[f.name].__set__ for f in fields(EventsRecordedInput))


def events_recorded_input(
        workflow: str, workflow_id: str, run_id: str, namespace: str,
        headers: Mapping[str, str], events: Sequence[NewEvent],
        timers_due: Mapping[int, float], timers_set: Mapping[int, float],
        started_at: float, parent_run_id: str | None) -> EventsRecordedInput:
    """``EventsRecordedInput(...)`` at a third of its constructor's cost (each field set
    through its slot's descriptor, not ``object.__setattr__``): a worker makes one for
    each write its observers are about (tracing: every run's end)."""
    made = _new(EventsRecordedInput)
    _set_workflow(made, workflow)
    _set_workflow_id(made, workflow_id)
    _set_run_id(made, run_id)
    _set_namespace(made, namespace)
    _set_headers(made, headers)
    _set_events(made, events)
    _set_timers_due(made, timers_due)
    _set_timers_set(made, timers_set)
    _set_started_at(made, started_at)
    _set_parent_run_id(made, parent_run_id)
    return made


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleFiredInput:
    """A worker's scheduler acted on a schedule's due ticks (one transaction)."""

    schedule_id: str
    workflow: str
    """The workflow the schedule starts."""
    ticks: Sequence[float]
    """The ticks acted on (epoch seconds: when each was due), oldest first."""
    fired_at: float
    """When (the engine's clock): ``fired_at - tick`` is how late each tick was."""
    started: Sequence[str]
    """The workflow ids of the runs started (fewer than ticks when the overlap policy
    skipped or buffered some)."""
    missed: int = 0
    """Ticks older than the catch-up window, skipped."""


class WorkerInterceptor:
    """Base class of worker interceptors: every hook passes the call on unchanged.

    Pass instances to ``Worker(..., interceptors=[...])`` or ``Engine(...,
    interceptors=[...])`` (an object that is both a client and a worker interceptor
    serves both sides); the first sees each call first.
    """

    recorded_kinds: ClassVar[frozenset[str] | None] = None
    """The event kinds :meth:`events_recorded` is about: a write holding none of them is
    not reported to this interceptor (most writes are a step's outcome, and a worker
    writes about once a step). None (the default): every write. Read once, when the
    worker is made; like the hooks an interceptor's class overrides, which are worked
    out once per class (change neither on a class in use)."""

    async def execute_workflow(
            self, input: ExecuteWorkflowInput,
            next: Callable[[ExecuteWorkflowInput], Awaitable[Any]]) -> Any:
        """The workflow function runs; returns its result. Deterministic."""
        return await next(input)

    async def execute_step(self, input: ExecuteStepInput,
                           next: Callable[[ExecuteStepInput], Awaitable[Any]]) -> Any:
        """A step attempt runs; returns its result. Runs where the step runs."""
        return await next(input)

    def attempt_started(self, info: StepInfo) -> Callable[[BaseException | None], None] | None:
        """A step attempt begins (``info``: its ``duro.step_info()``), where it runs, in
        its own context: a context variable set here (a current span) is what the step's
        code sees, sync or async. Returns a callable the worker calls once the attempt is
        over, in the same context, with what it raised (None: it returned), or None.

        For hooks that watch attempts without changing them (a span, a timer): lighter
        than :meth:`execute_step` (no coroutine, no input made, per attempt). Hooks of
        several interceptors begin first to last and end last to first; what one raises
        is logged and dropped (the attempt goes on)."""
        return None

    def handle_signal(self, input: HandleSignalInput,
                      next: Callable[[HandleSignalInput], None]) -> None:
        """A signal is delivered (not calling ``next`` drops it). Deterministic."""
        next(input)

    async def handle_update(self, input: HandleUpdateInput,
                            next: Callable[[HandleUpdateInput], Awaitable[Any]]) -> Any:
        """An update's handler runs; returns its result. Deterministic."""
        return await next(input)

    def handle_query(self, input: HandleQueryInput,
                     next: Callable[[HandleQueryInput], Any]) -> Any:
        """A query's handler answers; returns the answer. Read-only."""
        return next(input)

    def events_recorded(self, input: EventsRecordedInput) -> None:
        """The worker has committed these events to the run's history (a notification,
        called once per write, on the worker's loop, never on replay). Keep it quick and
        do not raise: what it raises is logged and dropped."""

    def schedule_fired(self, input: ScheduleFiredInput) -> None:
        """The worker's scheduler has committed the firing of a schedule's due ticks (a
        notification, like :meth:`events_recorded`)."""
