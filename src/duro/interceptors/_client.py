"""Client interceptors: every call a client makes to runs, seen by a chain of objects.

An interceptor overrides the hooks it needs; each gets the call's input (a frozen
record: change it with :func:`dataclasses.replace`) and ``next``, the rest of the chain
down to the client's own implementation. Not calling ``next`` refuses the call; an
exception raised propagates to the caller. Hooks an interceptor does not override cost
nothing, and a client without interceptors calls its implementation directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from duro._history import SearchValue
from duro.interceptors._chain import chain

if TYPE_CHECKING:
    from duro.client import WorkflowHandle

__all__ = [
    "CancelInput",
    "ClientInterceptor",
    "QueryInput",
    "SignalInput",
    "StartInput",
    "TerminateInput",
    "UpdateInput",
    "intercept",
]

I = TypeVar("I")  # noqa: E741 (the input of a hook)
O = TypeVar("O")  # noqa: E741 (its output)

@dataclass(frozen=True, kw_only=True, slots=True)
class StartInput:
    """A run being started (``start``, ``signal_with_start``, ``update_with_start``)."""

    workflow: str
    """The workflow's registered name."""
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    workflow_id: str | None
    """The id asked for (None: a random one)."""
    signal: str | None = None
    """The signal sent with the start (``signal_with_start``)."""
    update: str | None = None
    """The update sent with the start (``update_with_start``)."""
    headers: Mapping[str, str] | None = None
    """The run's headers: carried into the run, its steps and its children (and onto the
    message sent with the start). An interceptor sets or extends them (``replace``)."""
    search_attributes: Mapping[str, SearchValue] | None = None
    """The run's search attributes (checked after the interceptors)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SignalInput:
    """A signal sent to the live run of a workflow id."""

    workflow_id: str
    name: str
    payload: Any
    headers: Mapping[str, str] | None = None
    """The signal's headers (the worker's ``handle_signal`` sees them)."""
    signal_id: str | None = None
    """The delivery's id: recorded at most once per workflow id chain (``Client.signal``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class UpdateInput:
    """An update sent to the live run of a workflow id (the call waits for its result)."""

    workflow_id: str
    name: str
    args: tuple[Any, ...]
    update_id: str | None
    timeout: float | None
    headers: Mapping[str, str] | None = None
    """The update's headers (the worker's ``handle_update`` sees them)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class QueryInput:
    """A query to a run (nothing is recorded)."""

    workflow_id: str
    run_id: str | None
    name: str
    args: tuple[Any, ...]
    headers: Mapping[str, str] | None = None
    """The query's headers (the worker's ``handle_query`` sees them)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CancelInput:
    """A cancellation request to the live run of a workflow id."""

    workflow_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TerminateInput:
    """The termination of the live run of a workflow id."""

    workflow_id: str
    reason: str


class ClientInterceptor:
    """Base class of client interceptors: every hook passes the call on unchanged.

    Pass instances to ``Client(..., interceptors=[...])`` (or ``Engine``); the first
    sees each call first.
    """

    async def start(self, input: StartInput,
                    next: Callable[[StartInput], Awaitable[WorkflowHandle[Any]]],
                    ) -> WorkflowHandle[Any]:
        """A run is started; returns its handle."""
        return await next(input)

    async def signal(self, input: SignalInput,
                     next: Callable[[SignalInput], Awaitable[None]]) -> None:
        """A signal is sent."""
        await next(input)

    async def update(self, input: UpdateInput,
                     next: Callable[[UpdateInput], Awaitable[Any]]) -> Any:
        """An update is sent; returns the handler's result."""
        return await next(input)

    async def query(self, input: QueryInput,
                    next: Callable[[QueryInput], Awaitable[Any]]) -> Any:
        """A query is asked; returns the answer."""
        return await next(input)

    async def cancel(self, input: CancelInput,
                     next: Callable[[CancelInput], Awaitable[None]]) -> None:
        """A run is asked to cancel."""
        await next(input)

    async def terminate(self, input: TerminateInput,
                        next: Callable[[TerminateInput], Awaitable[None]]) -> None:
        """A run is terminated."""
        await next(input)


async def intercept(interceptors: Sequence[ClientInterceptor], hook: str, input: I,
                    last: Callable[[I], Awaitable[O]]) -> O:
    """Call ``last(input)`` through the interceptors' ``hook`` methods, first to last
    (those that do not override it are skipped)."""
    call: Callable[[I], Awaitable[O]] = chain(interceptors, ClientInterceptor, hook, last)
    return await call(input)
