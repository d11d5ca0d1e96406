"""A deterministic asyncio event loop for workflow code.

It has no I/O and no clock of its own: ``time()`` is the workflow's recorded time, a
``call_later`` is a durable timer, and it runs only when the worker steps it. Standard
asyncio (gather, wait, wait_for, timeout, Event, Queue, Lock, TaskGroup) works on it
because those only need futures, tasks and callbacks.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVarTuple, Unpack

from duro.errors import InvalidArgumentError, WorkflowBlockingError

if TYPE_CHECKING:
    from duro.workflow._instance import RunInstance

__all__ = ["WorkflowLoop"]

log = logging.getLogger("duro.workflow")

_Ts = TypeVarTuple("_Ts")


class WorkflowLoop(asyncio.AbstractEventLoop):
    """The event loop one workflow run executes on."""

    def __init__(self, instance: RunInstance) -> None:
        # The instance and its loop refer to each other; RunInstance.close() detaches the
        # loop (see there) so that reference counting frees a dropped run.
        self.instance = instance
        self.ready: collections.deque[asyncio.Handle] = collections.deque()
        self._closed = False
        self._running = False
        self._exception_handler: Any = None
        self._task_factory: Any = None
        # This run's tasks: asyncio.all_tasks(loop) would scan every task of the process.
        self.tasks: list[asyncio.Task[Any]] = []
        # Finished tasks are dropped when the list outgrows this mark, which then doubles
        # over what is left: pruning on every task past a fixed size was quadratic in a
        # gather of many steps (each new task rescanned all the pending ones).
        self._prune_at = 64

    # -- time and callbacks ------------------------------------------------------

    def time(self) -> float:
        return self.instance.now_ts

    def call_soon(
        self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self.ready.append(handle)
        return handle

    def call_soon_threadsafe(
        self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        raise WorkflowBlockingError(
            "call_soon_threadsafe inside a workflow: workflow code must not use threads; "
            "move this into a @duro.step"
        )

    def call_later(
        self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(
        self, when: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        if when != when:  # NaN: no instant; stored, the timer would never fire
            raise InvalidArgumentError("a workflow timer needs a number of seconds, not NaN")
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        if when <= self.time():
            self.ready.append(handle)
        else:
            self.instance.start_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        self.instance.cancel_timer(handle)

    # -- futures and tasks -----------------------------------------------------------

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None,
                    context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        if self._task_factory is not None:
            task: asyncio.Task[Any] = self._task_factory(self, coro)
        else:
            task = asyncio.Task(coro, loop=self, name=name, context=context)
        if len(self.tasks) > self._prune_at:
            self.tasks = [t for t in self.tasks if not t.done()]
            self._prune_at = max(64, 2 * len(self.tasks))
        self.tasks.append(task)
        return task

    def set_task_factory(self, factory: Any) -> None:
        self._task_factory = factory

    def get_task_factory(self) -> Any:
        return self._task_factory

    # -- state -----------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def detach(self) -> None:
        """Drop the reference to the instance (after it closed), keeping what a late
        callback may still read: its time, and that nothing can be scheduled any more."""
        self.instance = _Detached(self.instance)  # type: ignore[assignment]

    def close(self) -> None:
        self._closed = True
        self.ready.clear()

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    async def shutdown_asyncgens(self) -> None:
        pass

    async def shutdown_default_executor(self) -> None:
        pass

    # -- errors ------------------------------------------------------------------------

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is not None and self.instance.absorb_error(exc):
            return
        log.warning("workflow %s: %s", self.instance.workflow_id, context.get("message"),
                    exc_info=exc)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._exception_handler is not None:
            self._exception_handler(self, context)
        else:
            self.default_exception_handler(context)

    # -- what a workflow must not do ----------------------------------------------------

    def run_forever(self) -> None:
        raise RuntimeError("a workflow loop is driven by its worker")

    def run_until_complete(self, future: Any) -> Any:
        raise RuntimeError("a workflow loop is driven by its worker")

    def stop(self) -> None:
        pass


def _forbidden(name: str) -> Callable[..., Any]:
    def method(self: WorkflowLoop, *args: Any, **kwargs: Any) -> Any:
        err = WorkflowBlockingError(
            f"workflow code called loop.{name}(): workflows must not do I/O, use threads "
            f"or subprocesses (their results would not replay). Move it into a @duro.step."
        )
        if self.instance.park_error is None:
            self.instance.park_error = err  # even if the workflow catches it
        raise err

    method.__name__ = name
    return method


for _name in (
    "run_in_executor", "set_default_executor", "getaddrinfo", "getnameinfo",
    "create_connection", "create_server", "create_unix_connection", "create_unix_server",
    "create_datagram_endpoint", "connect_accepted_socket", "connect_read_pipe",
    "connect_write_pipe", "subprocess_exec", "subprocess_shell", "add_reader", "add_writer",
    "remove_reader", "remove_writer", "sock_recv", "sock_recv_into", "sock_recvfrom",
    "sock_recvfrom_into", "sock_sendall", "sock_sendto", "sock_connect", "sock_accept",
    "sock_sendfile", "sendfile", "start_tls", "add_signal_handler", "remove_signal_handler",
):
    setattr(WorkflowLoop, _name, _forbidden(_name))


class _Detached:
    """Stands in for a closed instance, without referring to it."""

    def __init__(self, instance: RunInstance) -> None:
        self.now_ts = instance.now_ts
        self.workflow_id = instance.workflow_id
        self.park_error: Exception | None = None

    def start_timer(self, handle: asyncio.TimerHandle) -> None:
        handle.cancel()  # the run is closed: nothing is scheduled any more

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None:
        pass

    def absorb_error(self, exc: BaseException) -> bool:
        return True  # errors of a closed run's leftovers are nobody's concern
