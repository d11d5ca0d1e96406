"""``@duro.workflow`` and the API workflow code calls (``duro.now()``, ``duro.sleep()``...)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import inspect
import marshal
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

import orjson

from duro._queues import Queue, queue_name
from duro.budget._budget import Budget, budgets_of
from duro.errors import (
    DuroError,
    PayloadDecodeError,
    WorkflowArgumentsError,
    WorkflowNotFoundError,
)
from duro.serde import convert, encode, hints_of

if TYPE_CHECKING:
    from duro.workflow._instance import RunInstance
    from duro.workflow._loop import WorkflowLoop

__all__ = [
    "Workflow",
    "WorkflowInfo",
    "current_instance",
    "find_workflow",
    "in_workflow",
    "info",
    "lookup_workflow",
    "now",
    "patched",
    "random",
    "registered_workflows",
    "sleep",
    "uuid4",
    "workflow",
]

P = ParamSpec("P")
R = TypeVar("R")

_registry: dict[str, Workflow[Any, Any]] = {}
_SCALARS = frozenset({str, int, float, bool})


class Workflow(Generic[P, R]):
    """A workflow definition. Start it with ``Engine.start(wf, *args)``."""

    def __init__(self, fn: Callable[P, Awaitable[R]], *, name: str | None = None,
                 queue: str | Queue = "default",
                 budget: Budget | Sequence[Budget] | None = None,
                 expose: bool = False) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@duro.workflow needs an async def function, got {fn!r}")
        self.fn = fn
        self.budgets = budgets_of(budget)
        """The budgets of its runs started without ``budget=``."""
        self.name = name or fn.__qualname__
        self.queue = queue_name(queue)
        self.exposed = expose
        """Callable from other deployments through ``duro serve`` (docs/rpc.md)."""
        self.signature = inspect.signature(fn)
        hints = hints_of(fn)
        self.return_hint: Any = hints.pop("return", Any)
        self.param_hints: dict[str, Any] = hints
        params = self.signature.parameters.values()
        # (name, hint) by position when every parameter can be passed by position: then
        # checking positional arguments needs no Signature.bind (~2 us of each start).
        self._positional: list[tuple[str, Any]] | None = (
            None if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                        for p in params)
            else [(p.name, hints.get(p.name, Any)) for p in params])
        self.code_hash = _code_hash(fn)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__qualname__ = getattr(fn, "__qualname__", self.name)
        self.__module__ = fn.__module__
        previous = _registry.get(self.name)
        if previous is not None and previous.fn.__module__ != fn.__module__:
            raise DuroError(
                f"two workflows are named {self.name!r} ({previous.fn.__module__} and "
                f"{fn.__module__}); give one an explicit name=..."
            )
        _registry[self.name] = self

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """Outside a workflow: the plain function. Inside one: a child workflow run."""
        if in_workflow():
            # Not via execute_child(): the child's own keyword arguments (even one named
            # "id") must reach the child untouched.
            fut = _instance("child").schedule_child(
                self, args, kwargs, workflow_id=None, parent_close="terminate",
                execution_timeout=None)

            async def wait() -> R:
                result: R = await fut
                return result

            return wait()
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<duro.workflow {self.name}>"

    def encode_input(self, args: Sequence[Any], kwargs: Mapping[str, Any], *,
                     what: str) -> bytes:
        """The input payload of a run with these arguments (already bound to the
        signature by the caller), checked to decode as the parameters' type hints.

        The check is what keeps a run from being parked on its own input: an ``int``
        passed where ``str`` is declared, a list for a dict, keys JSON cannot give back.

        Raises:
            SerializationError: An argument cannot be stored as JSON.
            WorkflowArgumentsError: An argument would not come back as the type its
                parameter declares.
        """
        payload = encode({"args": list(args), "kwargs": dict(kwargs)}, what=what)
        if not kwargs and self._come_back_as_they_are(args):
            return payload
        try:
            raw = orjson.loads(payload)
            if kwargs or self._positional is None:
                self._convert(self._bind(raw))
            else:
                for (pname, hint), value in zip(self._positional, raw["args"], strict=False):
                    _convert_argument(pname, value, hint)
        except (TypeError, ValueError, KeyError) as exc:
            raise WorkflowArgumentsError(f"{what} do not fit the workflow's type hints: "
                                         f"{exc}") from None
        return payload

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any], *,
                        what: str) -> None:
        """Refuse arguments that do not fit the signature.

        Raises:
            WorkflowArgumentsError: Too many, missing or unknown arguments; the message
                begins with ``what`` (e.g. "workflow 'x' called").
        """
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise WorkflowArgumentsError(f"{what} with wrong arguments: {exc}") from None

    def _come_back_as_they_are(self, args: Sequence[Any]) -> bool:
        """Whether every positional argument is a str, int, float or bool of exactly
        its hinted type (or hinted ``Any``): JSON gives those back unchanged, so the
        common start needs a few comparisons here, not a parse."""
        positional = self._positional
        return positional is not None and all(
            hint is Any or (type(value) is hint and hint in _SCALARS)
            for (_, hint), value in zip(positional, args, strict=False))

    def decode_input(self, data: bytes | None, *, what: str) -> inspect.BoundArguments:
        """The arguments stored in a run's input, bound to the signature and converted
        to the parameters' type hints.

        Raises:
            PayloadDecodeError: Not valid JSON, not this signature, or not these types.
        """
        try:
            bound = self._bind(orjson.loads(data) if data else {})
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise PayloadDecodeError(
                f"{what} cannot be read for workflow {self.name!r}: {exc}") from None
        try:
            return self._convert(bound)
        except (TypeError, ValueError, KeyError) as exc:
            raise PayloadDecodeError(
                f"{what} does not fit workflow {self.name!r}: {exc}") from None

    def _bind(self, raw: dict[str, Any]) -> inspect.BoundArguments:
        return self.signature.bind(*raw.get("args", []), **raw.get("kwargs", {}))

    def _convert(self, bound: inspect.BoundArguments) -> inspect.BoundArguments:
        """Convert bound JSON values to the parameters' hints, in place.

        Raises:
            TypeError: A value does not fit; the message names the parameter.
        """
        for pname, value in list(bound.arguments.items()):
            hint = self.param_hints.get(pname)
            if hint is None:
                continue
            kind = self.signature.parameters[pname].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                bound.arguments[pname] = tuple(_convert_argument(pname, v, hint)
                                               for v in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                bound.arguments[pname] = {k: _convert_argument(pname, v, hint)
                                          for k, v in value.items()}
            else:
                bound.arguments[pname] = _convert_argument(pname, value, hint)
        return bound


def _convert_argument(name: str, value: Any, hint: Any) -> Any:
    """``convert(value, hint)``; an error names the parameter."""
    try:
        return convert(value, hint)
    except (TypeError, ValueError, KeyError) as exc:
        raise TypeError(f"argument {name!r} ({_type_name(hint)}): {exc}") from None


def _type_name(hint: Any) -> str:
    return hint.__qualname__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _code_hash(fn: Callable[..., Any]) -> str:
    """A fingerprint of the code a run executes: its module's source and the function.

    A run parked by code with one fingerprint is retried by a worker with another.
    """
    digest = hashlib.sha256()
    module = sys.modules.get(fn.__module__)
    try:
        if module is not None:
            digest.update(inspect.getsource(module).encode())
    except (OSError, TypeError):
        pass
    code = getattr(fn, "__code__", None)
    if code is not None:
        digest.update(marshal.dumps(code))
    return digest.hexdigest()[:16]


@overload
def workflow(fn: Callable[P, Awaitable[R]], /) -> Workflow[P, R]: ...
@overload
def workflow(
    *, name: str | None = None, queue: str | Queue = "default",
    budget: Budget | Sequence[Budget] | None = None, expose: bool = False,
) -> Callable[[Callable[P, Awaitable[R]]], Workflow[P, R]]: ...
def workflow(
    fn: Callable[P, Awaitable[R]] | None = None, /, *, name: str | None = None,
    queue: str | Queue = "default", budget: Budget | Sequence[Budget] | None = None,
    expose: bool = False,
) -> Workflow[P, R] | Callable[[Callable[P, Awaitable[R]]], Workflow[P, R]]:
    """Declare a workflow: deterministic ``async def`` orchestration code.

    Args:
        name: The registered name; defaults to the function's qualified name. Runs
            are matched to code by this name, so keep it stable.
        queue: The queue its runs go to unless ``Engine.start(queue=...)`` says otherwise:
            its name or its :class:`duro.Queue`.
        budget: The budgets (a :class:`duro.Budget` or a list) of its runs started
            without ``budget=`` (which replaces them), checked before each attempt of its
            ``budgeted`` steps.
        expose: Let other deployments call it as an operation (``duro.call``): ``duro
            serve`` serves it at ``POST /v1/operations/{name}`` (docs/rpc.md). Workflows
            not exposed are not found there.

    Raises:
        InvalidArgumentError: ``budget`` is not a Budget or a list of them.
    """
    if fn is not None:
        return Workflow(fn, name=name, queue=queue, budget=budget, expose=expose)

    def decorate(f: Callable[P, Awaitable[R]]) -> Workflow[P, R]:
        return Workflow(f, name=name, queue=queue, budget=budget, expose=expose)

    return decorate


def lookup_workflow(name: str) -> Workflow[Any, Any]:
    """The registered workflow called ``name``."""
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise WorkflowNotFoundError(
            f"no workflow named {name!r} is registered in this process (known: {known}); "
            "import the module that defines it"
        ) from None


def find_workflow(name: str) -> Workflow[Any, Any] | None:
    """The registered workflow called ``name``, or None (no error to build: a server
    without the workflows' modules starts every run by a name it does not know)."""
    return _registry.get(name)


def registered_workflows() -> dict[str, Workflow[Any, Any]]:
    """Every workflow declared so far in this process, by name."""
    return dict(_registry)


# -- the workflow-side API -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WorkflowInfo:
    """What a running workflow knows about itself (``duro.info()``)."""

    workflow_id: str
    run_id: str
    workflow_name: str
    is_replaying: bool
    headers: Mapping[str, str] = field(default_factory=dict)
    """Context the run was started with (trace ids, tenant...; see interceptors)."""
    namespace: str = "default"
    """The namespace the run belongs to (docs/namespaces.md)."""


def _instance(what: str) -> RunInstance:
    from duro.workflow._loop import WorkflowLoop

    loop = asyncio.events._get_running_loop()
    if not isinstance(loop, WorkflowLoop):
        raise RuntimeError(f"duro.{what}() can only be called from workflow code")
    return loop.instance


def current_instance() -> RunInstance | None:
    """The run whose workflow code is running now, or None outside workflow code."""
    loop = asyncio.events._get_running_loop()
    return loop.instance if isinstance(loop, _loop_type()) else None


@functools.cache
def _loop_type() -> type[WorkflowLoop]:
    from duro.workflow._loop import WorkflowLoop

    return WorkflowLoop


def in_workflow() -> bool:
    """True when called from workflow code (on the workflow's loop)."""
    from duro.workflow._loop import WorkflowLoop

    return isinstance(asyncio.events._get_running_loop(), WorkflowLoop)


def info() -> WorkflowInfo:
    """Information about the running workflow."""
    inst = _instance("info")
    return WorkflowInfo(workflow_id=inst.workflow_id, run_id=inst.run_id,
                        workflow_name=inst.workflow.name, is_replaying=inst.replaying,
                        headers=dict(inst.headers or {}), namespace=inst.namespace)


def now() -> dt.datetime:
    """The workflow's current time (UTC): the time of the last event it saw. Deterministic."""
    return dt.datetime.fromtimestamp(_instance("now").now_ts, tz=dt.UTC)


def random() -> float:
    """A random float in [0, 1), the same on every replay of this run."""
    return _instance("random").rng.random()


def uuid4() -> uuid.UUID:
    """A random UUID, the same on every replay of this run."""
    return uuid.UUID(int=_instance("uuid4").rng.getrandbits(128), version=4)


async def sleep(duration: float | timedelta) -> None:
    """A durable timer: the run can be suspended, evicted, and woken when due.

    ``asyncio.sleep`` inside a workflow is the same durable timer.
    """
    _instance("sleep")
    await asyncio.sleep(duration.total_seconds() if isinstance(duration, timedelta) else duration)


def patched(change_id: str) -> bool:
    """Whether this run takes the new code path of a change.

    Runs that reached this point under the old code replay with ``False``; new runs
    and runs reaching it for the first time record a marker and get ``True``.
    """
    return _instance("patched").patched(change_id)
