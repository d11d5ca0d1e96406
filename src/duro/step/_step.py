"""``@duro.step``: functions with side effects, recorded once, retried by policy."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, Protocol, TypeVar, overload

from duro._checks import check_seconds
from duro._queues import Queue, queue_name
from duro.errors import InvalidArgumentError
from duro.serde import encode, hints_of
from duro.step._cache import Cache
from duro.step._policy import RetryPolicy

if TYPE_CHECKING:
    from duro.workflow._loop import WorkflowLoop

__all__ = ["MAX_CHUNK_BYTES", "CompleteLater", "Step", "StepInfo", "complete_later",
           "heartbeat", "register_steps", "step", "step_info", "stream"]

MAX_CHUNK_BYTES = 1 << 20
"""The largest chunk ``duro.stream()`` takes, encoded (a stream is for small pieces)."""

P = ParamSpec("P")
R = TypeVar("R")

_registry: dict[str, Step[Any, Any]] = {}

_instances: dict[type, object] = {}
"""The object whose method steps run when a step of its class is run by name (a task of
a queue, claimed by a worker of another process): :func:`register_steps`."""


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
    queue: str = "default"
    """The queue the attempt ran from: the step's own (a step queue's worker ran it), else
    its run's (the run's worker ran it)."""
    workflow: str = ""
    """The name of the run's workflow ("" for a step queued by a duro that did not say)."""
    _on_heartbeat: Callable[[Any], None] | None = field(default=None, repr=False)
    _usage: list[dict[str, Any]] | None = field(default=None, repr=False)
    """What ``duro.record_usage`` recorded in this attempt (None: nothing, the usual
    case, so a step that records nothing allocates nothing)."""
    _streams: StreamOpener | None = field(default=None, repr=False)
    _stream: StreamSink | None = field(default=None, repr=False)

    @property
    def completion_token(self) -> str:
        """This attempt's token for :func:`complete_later`: whoever has it completes,
        fails or heartbeats the attempt from outside (``client.steps``)."""
        return f"{self.run_id}.{self.seq}.{self.attempt}"

    def _record_usage(self, usage: dict[str, Any]) -> None:
        # From the step's own code (its thread, for a sync step): list.append is atomic.
        if self._usage is None:
            self._usage = []
        self._usage.append(usage)


class StreamSink(Protocol):
    """Where an attempt's chunks go (the worker's buffer: ``worker/_streams.py``)."""

    def add(self, data: str) -> None:
        """Queue one chunk's JSON text."""
        ...

    def seal(self) -> None:
        """Take no more chunks (the attempt was abandoned: what is pending is dropped)."""
        ...

    async def close(self) -> None:
        """Write what is pending, then take no more."""
        ...


class StreamOpener(Protocol):
    """Makes an attempt's :class:`StreamSink` at its first chunk."""

    def open(self, info: StepInfo) -> StreamSink:
        """The attempt's sink (made once, from any thread)."""
        ...


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


_WAITING: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
"""The tasks of step attempts inside :func:`interruptible` now."""


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Mark the step attempt running now as only waiting, for the block (``duro.call``'s
    long poll of a remote operation): a draining worker cancels it at once, as an attempt
    not started (nothing recorded; the run's next worker runs it), rather than give it
    the grace period it gives attempts doing work."""
    task = asyncio.current_task()
    if task is None:
        yield
        return
    _WAITING.add(task)
    try:
        yield
    finally:
        _WAITING.discard(task)


def waiting(task: asyncio.Task[Any]) -> bool:
    """Whether the attempt running in ``task`` is inside :func:`interruptible` now."""
    return task in _WAITING


class CompleteLater(BaseException):
    """Raised by :func:`complete_later`: the attempt ends without an outcome, which comes
    from outside by its token. A ``BaseException``, so that ``except Exception`` in the
    step's code does not swallow it."""


def complete_later() -> NoReturn:
    """End this step attempt without an outcome: it is completed (or failed) from
    outside, by its token (``duro.step_info().completion_token``), with
    ``client.steps.complete(token, result)``, ``client.steps.fail(token, error)``,
    ``duro step complete TOKEN RESULT`` or ``POST /v1/steps/{token}/complete``::

        @duro.step
        async def review(doc: str) -> str:
            await ticketing.open(doc, callback_token=duro.step_info().completion_token)
            duro.complete_later()

    The wait is recorded in the history (so a restart waits on, it does not run the
    step again); the run suspends meanwhile. The step's return annotation types the
    result given. Not in steps routed to a queue.

    Raises:
        RuntimeError: Not called from inside a step that a workflow runs.
    """
    step_info()
    raise CompleteLater()


def heartbeat(details: Any = None) -> None:
    """Report that a long step is alive, with optional progress details.

    Resets the step's heartbeat timeout. The last details are kept durably, and a
    retried attempt sees them as ``step_info().heartbeat_details``. Outside a step run by
    a workflow this does nothing.
    """
    info = _current_step.get()
    if info is not None and info._on_heartbeat is not None:
        info._on_heartbeat(details)


def stream(chunk: Any) -> None:
    """Send a chunk (text, or any JSON value) to the run's stream, live, while the step
    runs: readers get it from ``handle.stream()`` (or ``GET /v1/runs/{id}/stream``).

    Cheap and thread-safe (sync steps call it from their thread): the chunk is encoded
    here and buffered; the worker writes chunks in batches beside the history, and
    writes the rest before the step's outcome is recorded, so a step's stream is
    complete once its result is. A retried attempt's chunks supersede the earlier
    ones'. Called by workflow code, the value is recorded with the run's next write and
    goes to the stream in the same transaction: exactly once across replays and crashes
    (:func:`duro.close_stream` ends the stream for readers). Elsewhere this does nothing
    (as ``heartbeat``), after checking the chunk.

    Raises:
        SerializationError: The chunk cannot be encoded as JSON.
        InvalidArgumentError: It is larger than 1 MiB encoded.
        StoreError: An earlier batch of this attempt could not be written.
        RuntimeError: Workflow code whose stream is closed.
    """
    data = encode(chunk, what="a stream chunk")
    if len(data) > MAX_CHUNK_BYTES:
        raise InvalidArgumentError(f"a stream chunk is at most {MAX_CHUNK_BYTES} bytes "
                                   f"encoded, not {len(data)}")
    info = _current_step.get()
    if info is None:  # workflow code's own value, recorded with its next write
        from duro.workflow._features import stream_from_workflow

        stream_from_workflow(data)
        return
    streams = info._streams  # once: the worker clears it when the attempt ends
    if streams is None:
        return
    sink = info._stream or streams.open(info)
    sink.add(data.decode())


class Step(Generic[P, R]):
    """A step: call it from a workflow and ``await`` it.

    Outside a workflow, awaiting the call runs the plain function (sync functions
    inline), so steps are easy to unit-test; ``.fn`` is the undecorated function.

    Declared on a method (``@duro.step`` in a class body), the step is registered once
    for the class (named ``module.Class.method``) and bound on attribute access, as a
    method is: ``obj.method(x)`` runs with ``obj`` as ``self``, which never enters the
    history or a task's arguments.
    """

    owner: type | None = None
    """The class a method step is declared in (None: a plain function)."""
    instance: object | None = None
    """For a bound method step: the object it runs on."""

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
        cache: Cache | None = None,
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
        if cache is not None:
            if not isinstance(cache, Cache):
                raise InvalidArgumentError(f"cache must be a duro.Cache, not {cache!r}")
            cache.check_step(self.signature, self.name)
        self.cache = cache
        """The step's durable memo (None: every call runs; the worker checks only this)."""
        self._bound_shape: tuple[inspect.Signature, tuple[int, int] | None] | None = None
        functools.update_wrapper(self, fn)
        _registry[self.name] = self

    def __set_name__(self, owner: type, name: str) -> None:
        # Only a step whose function was written in this class body is a method: a
        # plain step merely stored as a class attribute stays unbound.
        if self.fn.__qualname__ == f"{owner.__qualname__}.{self.fn.__name__}":
            self.owner = owner

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Step[P, R]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> Step[..., R]: ...
    def __get__(self, obj: object | None, objtype: type | None = None) -> Step[Any, R]:
        if obj is None or self.owner is None:
            return self
        return self.bound_to(obj)

    def bound_to(self, obj: object) -> Step[Any, R]:
        """This method step bound to ``obj``: the same name and options, its function
        the bound method (so its signature has no ``self``)."""
        if self._bound_shape is None:  # once per step: a signature costs ~10 µs
            params = list(self.signature.parameters.values())[1:]
            sig = self.signature.replace(parameters=params)
            self._bound_shape = sig, _positional_arity(sig)
        # A shallow copy: ~0.5 µs per attribute access, as cheap as a bound method.
        bound: Step[Any, R] = object.__new__(Step)
        bound.__dict__.update(self.__dict__)
        bound.fn = self.fn.__get__(obj, type(obj))
        bound.signature, bound.positional_arity = self._bound_shape
        bound.owner, bound.instance = None, obj
        return bound

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


def register_steps(obj: object) -> object:
    """Name ``obj`` as the object whose method steps run here when a worker runs them
    by name: a step of its class routed to a queue (``queue=``) is claimed by a worker
    of that queue, possibly in another process, which calls the method on the object
    registered there for its class. Call it where the worker's modules are imported
    (``duro worker --module``). A later registration for the same class replaces it.

    Steps called on an object in workflow code (``await obj.method(x)``) need no
    registration when they run in the workflow's own worker.

    Returns:
        ``obj`` (so that ``uploader = duro.register_steps(Uploader(...))`` reads well).

    Raises:
        InvalidArgumentError: ``obj`` is a class, or its class declares no method step.
    """
    if isinstance(obj, type):
        raise InvalidArgumentError(f"register_steps takes an object, not the class "
                                   f"{obj.__qualname__}")
    owners = [c for c in type(obj).__mro__ if _method_steps(c)]
    if not owners:
        raise InvalidArgumentError(f"{type(obj).__qualname__} declares no method step "
                                   f"(@duro.step on a method)")
    for owner in owners:
        _instances[owner] = obj
    return obj


def _method_steps(cls: type) -> list[Step[Any, Any]]:
    return [v for v in vars(cls).values() if isinstance(v, Step) and v.owner is cls]


def registered(step: Step[Any, Any]) -> Step[Any, Any] | None:
    """A step run by name (a task) as it is to be called: a method step bound to its
    class's registered object (None: none is registered here), any other as it is."""
    if step.owner is None:
        return step
    obj = _instances.get(step.owner)
    return None if obj is None else step.bound_to(obj)


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
    cache: Cache | None = None,
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
    cache: Cache | None = None,
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
        cache: A :class:`duro.Cache`: a result stored by an earlier call with the same
            arguments (in the same scope, within its ``ttl``) is recorded instead of
            calling the function (docs/agents.md, "Durable LLM cache").
        budgeted: The step spends budget (it calls ``duro.record_usage``): before each
            attempt, the run's budgets (``duro.Budget``) are checked, and a spent one
            raises :class:`duro.BudgetExceededError` at the ``await`` (or pauses the
            run). Not with ``queue``.

    Raises:
        InvalidArgumentError: ``at_most_once`` or ``budgeted`` is not a bool, or is
            given with ``queue``; ``cache`` is not a :class:`duro.Cache`, or its scope
            names a parameter the step does not have.
    """
    options = dict(name=name, retry=retry, timeout=timeout, total_timeout=total_timeout,
                   heartbeat_timeout=heartbeat_timeout, queue=queue,
                   at_most_once=at_most_once, cache=cache, budgeted=budgeted)
    if fn is not None:
        return Step(fn, **options)  # type: ignore[arg-type]
    return _StepDecorator(options)
