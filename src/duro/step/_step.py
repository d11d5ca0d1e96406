"""``@duro.step``: functions with side effects, recorded once, retried by policy."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from duro._checks import check_seconds
from duro._queues import Queue, queue_name
from duro.errors import InvalidArgumentError
from duro.serde import hints_of
from duro.step._policy import RetryPolicy

if TYPE_CHECKING:
    from duro.workflow._loop import WorkflowLoop

__all__ = ["Step", "StepInfo", "heartbeat", "step", "step_info"]

P = ParamSpec("P")
R = TypeVar("R")

_registry: dict[str, Step[Any, Any]] = {}


@dataclass(kw_only=True)
class StepInfo:
    """What a running step attempt knows about itself (``duro.step_info()``)."""

    workflow_id: str
    run_id: str
    step: str
    seq: int
    attempt: int
    idempotency_key: str
    """Stable for this step of this run across retries and crashes: pass it to APIs."""
    heartbeat_details: Any = None
    """The details of the last ``duro.heartbeat()`` of an earlier attempt, if any."""
    deadline: float | None = None
    cancelled: bool = False
    """Set when the attempt was abandoned (timeout, cancellation): sync steps should stop."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """The run's headers (trace ids, tenant...), wherever the attempt runs."""
    _on_heartbeat: Callable[[Any], None] | None = field(default=None, repr=False)
    _usage: list[dict[str, Any]] | None = field(default=None, repr=False)
    """What ``duro.record_usage`` recorded in this attempt (None: nothing, the usual
    case, so a step that records nothing allocates nothing)."""

    def _record_usage(self, usage: dict[str, Any]) -> None:
        # From the step's own code (its thread, for a sync step): list.append is atomic.
        if self._usage is None:
            self._usage = []
        self._usage.append(usage)


_current_step: contextvars.ContextVar[StepInfo | None] = contextvars.ContextVar(
    "duro_step", default=None
)


def step_info() -> StepInfo:
    """Information about the step attempt running now.

    Raises:
        RuntimeError: Not called from inside a step that a workflow runs.
    """
    info = _current_step.get()
    if info is None:
        raise RuntimeError("duro.step_info() is only available inside a step run by a workflow")
    return info


def heartbeat(details: Any = None) -> None:
    """Report that a long step is alive, with optional progress details.

    Resets the step's heartbeat timeout. The last details are kept durably, and a
    retried attempt sees them as ``step_info().heartbeat_details``. Outside a step run by
    a workflow this does nothing.
    """
    info = _current_step.get()
    if info is not None and info._on_heartbeat is not None:
        info._on_heartbeat(details)


class Step(Generic[P, R]):
    """A step: call it from a workflow and ``await`` it.

    Outside a workflow, awaiting the call runs the plain function (sync functions
    inline), so steps are easy to unit-test; ``.fn`` is the undecorated function.
    """

    def __init__(
        self,
        fn: Callable[P, Any],
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        total_timeout: float | timedelta | None = None,
        heartbeat_timeout: float | timedelta | None = None,
        queue: str | Queue | None = None,
        at_most_once: bool = False,
        budgeted: bool = False,
    ) -> None:
        self.fn = fn
        self.queue = None if queue is None else queue_name(queue, "step queue")
        if not isinstance(at_most_once, bool):
            raise InvalidArgumentError(f"at_most_once must be True or False, "
                                       f"not {at_most_once!r}")
        if at_most_once and self.queue is not None:
            # A queued attempt's durable start would be its task's claim, and a task
            # whose worker is lost is claimed again: not supported yet, so refused.
            raise InvalidArgumentError("at_most_once steps cannot be routed to a queue "
                                       "(queue=): they run in the workflow's worker")
        self.at_most_once = at_most_once
        if not isinstance(budgeted, bool):
            raise InvalidArgumentError(f"budgeted must be True or False, not {budgeted!r}")
        if budgeted and self.queue is not None:
            # The admission and the charge happen where the run is held; a queued
            # attempt's outcome comes back as a message, not supported yet.
            raise InvalidArgumentError("budgeted steps cannot be routed to a queue "
                                       "(queue=): they run in the workflow's worker")
        self.budgeted = budgeted
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a duro.RetryPolicy, not {retry!r}")
        self.retry = retry or RetryPolicy()
        self.timeout = check_seconds(timeout, "timeout")
        self.total_timeout = check_seconds(total_timeout, "total_timeout")
        self.heartbeat_timeout = check_seconds(heartbeat_timeout, "heartbeat_timeout")
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self.positional_arity = _positional_arity(self.signature)
        self.return_hint: Any = hints_of(fn).get("return", Any)
        functools.update_wrapper(self, fn)
        _registry[self.name] = self

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self._invoke(args, kwargs)

    async def _invoke(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        loop = asyncio.events._get_running_loop()
        if isinstance(loop, _workflow_loop()):
            result: R = await loop.instance.schedule_step(self, args, kwargs)
            return result
        if self.is_async:
            return await self.fn(*args, **kwargs)  # type: ignore[no-any-return]
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<duro.step {self.name}>"


@functools.cache
def _workflow_loop() -> type[WorkflowLoop]:
    # Imported late (duro.workflow imports this module), and once: an import statement
    # in ``_invoke`` cost ~0.5 µs on every step call.
    from duro.workflow._loop import WorkflowLoop

    return WorkflowLoop


def _positional_arity(sig: inspect.Signature) -> tuple[int, int] | None:
    """(required, total) when every parameter can be passed by position, else None.

    Then a call with positional arguments only binds iff their count is in that range,
    which spares ``Signature.bind`` (~5 µs) on each call of a workflow's hot path.
    """
    params = sig.parameters.values()
    if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
        return None
    return sum(p.default is p.empty for p in params), len(params)


class _StepDecorator:
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Step[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Step[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Step[P, Any]:
        return Step(fn, **self.options)


@overload
def step(fn: Callable[P, Awaitable[R]], /) -> Step[P, R]: ...
@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | timedelta | None = None,
    total_timeout: float | timedelta | None = None,
    heartbeat_timeout: float | timedelta | None = None,
    queue: str | Queue | None = None,
    at_most_once: bool = False,
    budgeted: bool = False,
) -> _StepDecorator: ...
def step(
    fn: Callable[P, Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | timedelta | None = None,
    total_timeout: float | timedelta | None = None,
    heartbeat_timeout: float | timedelta | None = None,
    queue: str | Queue | None = None,
    at_most_once: bool = False,
    budgeted: bool = False,
) -> Step[P, Any] | _StepDecorator:
    """Declare a step: a sync or async function whose result is recorded once.

    Use bare (``@duro.step``) or with options (``@duro.step(retry=..., timeout=...)``).

    Args:
        name: The recorded name; defaults to ``module.qualname``. Keep it stable.
        retry: The retry policy; defaults to ``RetryPolicy()`` (3 attempts).
        timeout: Limit of one attempt (seconds or timedelta).
        total_timeout: Limit of all attempts and backoffs together.
        heartbeat_timeout: Fail an attempt that has not called ``duro.heartbeat()``
            for this long.
        queue: Run it on a worker serving this queue (its name, e.g. ``"gpu"``, or its
            :class:`duro.Queue`) instead of the
            workflow's worker: each attempt becomes a task row such a worker claims, and
            the run waits (suspended) meanwhile. Arguments must be JSON-serializable.
            The history is the same either way, so routing does not affect replay.
        at_most_once: Never run an attempt twice: each attempt's start is committed to
            the history before the function is called, and if its worker is lost before
            the outcome is recorded, the attempt is not run again: the workflow's
            ``await`` raises :class:`duro.StepOutcomeUnknownError`. Failures the function
            raises are retried by ``retry`` as usual. Not with ``queue``.
        budgeted: The step spends budget (it calls ``duro.record_usage``): before each
            attempt, the run's budgets (``duro.Budget``) are checked, and a spent one
            raises :class:`duro.BudgetExceededError` at the ``await`` (or pauses the
            run). Not with ``queue``.

    Raises:
        InvalidArgumentError: ``at_most_once`` or ``budgeted`` is not a bool, or is
            given with ``queue``.
    """
    options = dict(name=name, retry=retry, timeout=timeout, total_timeout=total_timeout,
                   heartbeat_timeout=heartbeat_timeout, queue=queue,
                   at_most_once=at_most_once, budgeted=budgeted)
    if fn is not None:
        return Step(fn, **options)  # type: ignore[arg-type]
    return _StepDecorator(options)
