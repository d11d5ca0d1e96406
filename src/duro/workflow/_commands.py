"""What a workflow run issues and how it leaves: its commands (steps, timers, children)
and their states, the :class:`Host` that receives them, and the exceptions that unwind
workflow code (:class:`Park`, :class:`ContinueAsNew`). The instance that issues them is
``_instance.RunInstance``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from duro._history import NewEvent, SearchValue
from duro.step._step import Step

if TYPE_CHECKING:
    from duro.workflow._api import Workflow
    from duro.workflow._instance import RunInstance

__all__ = ["NULL_HOST", "ChildCommand", "ChildState", "Command", "ContinueAsNew",
           "ExternalCommand", "ExternalState", "Host", "NullHost", "Park", "StepCommand",
           "StepState", "TimerCommand", "TimerState"]


class Park(BaseException):
    """Unwinds workflow code after a problem that parks the run (not user-catchable)."""


class ContinueAsNew(BaseException):
    """Raised by ``duro.continue_as_new()``: end this run and start a fresh one."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__("continue as new")
        self.call_args = args
        self.call_kwargs = kwargs


class Host(Protocol):
    """Where an instance's commands go: what it needs from whoever drives it.

    Called on the workflow's loop, while workflow code runs. Steps, timers and children
    are reported when issued live only (not while the history replays); events to
    record are reported whenever the workflow produces them.
    """

    def step_issued(self, inst: RunInstance, cmd: StepCommand) -> None: ...
    def step_cancelled(self, inst: RunInstance, cmd: StepCommand) -> None: ...
    def timer_started(self, inst: RunInstance, cmd: TimerCommand) -> None: ...
    def child_issued(self, inst: RunInstance, cmd: ChildCommand) -> None: ...
    def child_cancelled(self, inst: RunInstance, cmd: ChildCommand) -> None: ...
    def external_issued(self, inst: RunInstance, cmd: ExternalCommand) -> None: ...

    def record(self, inst: RunInstance, event: NewEvent) -> None:
        """An event the workflow produced (a marker, published state, an update's
        outcome), to be written with the run's next write."""


class NullHost:
    """A host that executes and records nothing: for read-only replays (queries, tests)."""

    def step_issued(self, inst: RunInstance, cmd: StepCommand) -> None:
        pass

    def step_cancelled(self, inst: RunInstance, cmd: StepCommand) -> None:
        pass

    def timer_started(self, inst: RunInstance, cmd: TimerCommand) -> None:
        pass

    def child_issued(self, inst: RunInstance, cmd: ChildCommand) -> None:
        pass

    def child_cancelled(self, inst: RunInstance, cmd: ChildCommand) -> None:
        pass

    def external_issued(self, inst: RunInstance, cmd: ExternalCommand) -> None:
        pass

    def record(self, inst: RunInstance, event: NewEvent) -> None:
        pass


NULL_HOST = NullHost()
"""The host of read-only replays, and of an instance once it is closed."""


StepState = Literal["new", "running", "remote", "backoff", "done", "cancelled"]
"""A step: not started yet; an attempt running here; handed to a step queue's workers;
waiting out a retry backoff; its outcome delivered; or abandoned by the workflow."""
TimerState = Literal["pending", "done", "cancelled"]
ChildState = Literal["new", "starting", "started", "done", "cancelled"]
ExternalState = Literal["new", "sending", "done"]
"""A message to another workflow: not sent yet; being sent and recorded; recorded."""
"""A child: not started yet; its start being written; running; ended; or abandoned."""


@dataclass(eq=False, kw_only=True)
class StepCommand:
    """A step the workflow awaits."""

    op: int
    step: Step[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: asyncio.Future[Any]
    state: StepState = "new"
    attempts: int = 0  # failed attempts recorded so far
    started: int = 0
    """The last attempt whose start was recorded (``step_started``: at-most-once steps);
    if it is ``attempts + 1``, that attempt ran, or may have, without an outcome."""
    retry_at: float | None = None
    first_started: float | None = None
    heartbeat: Any = None  # last heartbeat details (plain JSON value)
    task: asyncio.Task[Any] | None = None
    payload: bytes | None = None  # encoded arguments, for steps routed to a queue
    awaiting_until: float | None = None
    """For an attempt completed from outside (``duro.complete_later``): when its wait
    times out (durable time)."""
    cache_key: Any = None
    """A cached step's key in the durable cache (the worker's ``CacheKey``), once made."""
    budget_waits: int = 0  # consecutive budget admissions that had to wait (backoff)
    budget_paused: bool = False  # waiting for a spent budget to be raised
    on_done: Callable[[asyncio.Future[Any]], object] | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return "step"


@dataclass(eq=False, kw_only=True)
class TimerCommand:
    """A durable timer (``asyncio.sleep``, a timeout...)."""

    op: int
    fire_at: float
    handle: asyncio.TimerHandle = field(repr=False)
    state: TimerState = "pending"
    set_at: float = 0.0
    """The workflow's time when the timer was set (traces: the wait's start)."""

    @property
    def kind(self) -> str:
        return "timer"


@dataclass(eq=False, kw_only=True)
class ChildCommand:
    """A child workflow the parent awaits."""

    op: int
    workflow: Workflow[Any, Any]
    input: bytes
    future: asyncio.Future[Any]
    workflow_id: str
    parent_close: str
    execution_timeout: float | None
    state: ChildState = "new"
    run_id: str | None = None
    cancel_sent: bool = False
    search_attributes: dict[str, SearchValue] | None = None

    @property
    def kind(self) -> str:
        return "child"


@dataclass(eq=False, kw_only=True)
class ExternalCommand:
    """A signal or a cancel request to another workflow (``duro.external_workflow``)."""

    op: int
    message: str
    """``signal`` or ``cancel`` (a :class:`duro._messages.MessageKind`)."""
    workflow_id: str
    name: str | None
    """The signal's name (None for a cancel request)."""
    data: bytes | None
    """The signal's payload, encoded (not recorded here: the other run records it)."""
    future: asyncio.Future[None]
    state: ExternalState = "new"

    @property
    def kind(self) -> str:
        return "external"


Command = StepCommand | TimerCommand | ChildCommand | ExternalCommand
"""Anything a run issues and awaits an outcome of."""
