"""What reaches a run from outside, on the workflow side: signals, updates and cancel
requests, delivered to the workflow's code in the order they were recorded.

A message recorded in a run's history was acknowledged to its sender, so it must never
be dropped. Once the run's main coroutine has finished (returned, failed, or called
``continue_as_new``), nothing it does can take a message into account any more: a
message recorded after that is not delivered but kept, and so is one the code never
took (a buffered signal, or one handed to a waiter that never resumed). At
continue-as-new those are carried into the next run's inbox, in the order received; at
any other end, updates among them fail with a clear error (their callers must not be
told "done"). An update whose handler was still running when the main coroutine
finished fails too: its effect may be partial, and the state the run ended or continued
with was taken without it.

Deterministic like the rest of the instance: replaying the same history makes the same
deliveries and keeps the same messages.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from duro._history import EventKind, SignalMeta, UpdateMeta
from duro._messages import MessageKind
from duro.errors import ErrorInfo, NondeterminismError
from duro.interceptors._chain import chain, linked, overriding
from duro.interceptors._worker import HandleSignalInput, HandleUpdateInput, WorkerInterceptor
from duro.serde import convert, encode, hints_of

if TYPE_CHECKING:
    from duro.store import Message
    from duro.workflow._instance import RunInstance

__all__ = ["Mailbox", "Received", "convert_args"]

_set_running_loop = asyncio.events._set_running_loop
_get_running_loop = asyncio.events._get_running_loop

UNFINISHED = ("the run {ended} while the update's handler was still running: its effect "
              "is not part of the run (await the handlers before ending the run)")
UNHANDLED = "the run {ended} before the update was handled"


@dataclass(frozen=True, kw_only=True, slots=True)
class Received:
    """A message as the run's history recorded it."""

    no: int  # arrival order within the run
    kind: str  # signal | update | cancel
    name: str | None = None
    data: bytes | None = None  # the signal's payload, or the update's arguments
    update_id: str | None = None
    headers: Mapping[str, str] | None = None  # the sender's

    def message(self) -> Message:
        """This message again, for another run's inbox."""
        from duro.store import Message

        if self.kind == MessageKind.UPDATE:
            return Message.update_request(self.name, self.update_id or "", self.data,
                                          self.headers)
        meta = SignalMeta(headers=self.headers).encode() if self.headers else None
        return Message(kind=self.kind, name=self.name, data=self.data, meta=meta)


class Mailbox:
    """A run's signals, updates and cancel requests on the workflow side (see module)."""

    def __init__(self, inst: RunInstance) -> None:
        # A proxy, not a reference: the instance owns its mailbox, and a cycle between
        # them would leave every finished run to the cyclic collector, which a worker
        # makes run rarely.
        self._inst: RunInstance = weakref.proxy(inst)
        self._arrivals = 0
        self.buffer: dict[str, collections.deque[Received]] = {}
        self.waiters: dict[str, collections.deque[asyncio.Future[Any]]] = {}
        self._in_transit: dict[asyncio.Future[Any], Received] = {}
        self._since: dict[asyncio.Future[Any], float] = {}  # when each wait began
        self.signal_handlers: dict[str, Callable[..., Any]] = {}
        self.update_handlers: dict[str, tuple[Callable[..., Any],
                                              Callable[..., Any] | None]] = {}
        self.updates_done: set[str] = set()
        self._running: dict[str, Received] = {}  # handler started, no outcome recorded
        self._signal_tasks: set[asyncio.Task[Any]] = set()  # async signal handlers running
        self._late: list[Received] = []  # recorded after the main coroutine finished

    def _receive(self, kind: str, name: str | None = None, data: bytes | None = None,
                 update_id: str | None = None,
                 headers: Mapping[str, str] | None = None) -> Received:
        self._arrivals += 1
        return Received(no=self._arrivals, kind=kind, name=name, data=data,
                        update_id=update_id, headers=headers)

    def _main_finished(self) -> bool:
        main = self._inst.main
        return main is not None and main.done()

    # -- signals ---------------------------------------------------------------------

    def signal(self, name: str, data: bytes | None,
               headers: Mapping[str, str] | None = None) -> None:
        """Deliver a recorded signal (through the worker interceptors' ``handle_signal``):
        to its handler, else to the oldest waiter, else to the buffer; after the main
        coroutine finished, keep it."""
        received = self._receive(MessageKind.SIGNAL, name, data, headers=headers)
        if self._main_finished():
            self._late.append(received)
            return
        value = orjson.loads(data) if data else None
        inst = self._inst
        hooks = (overriding(inst.interceptors, WorkerInterceptor, "handle_signal")
                 if inst.interceptors else None)
        if not hooks:
            self._deliver(received, value)
            return

        def deliver(call: HandleSignalInput) -> None:
            changed = call.payload is not value
            self._deliver(dataclasses.replace(received, data=encode(
                call.payload, what=f"the payload of signal {name!r}")) if changed
                else received, call.payload)

        previous = _get_running_loop()
        _set_running_loop(inst.loop)  # duro.info() and friends work in the hook
        try:
            linked(hooks, "handle_signal", deliver)(
                HandleSignalInput(name=name, payload=value, headers=headers or {}))
        except BaseException as exc:  # an interceptor is workflow code: the run fails
            inst.fail_with(exc)
        finally:
            _set_running_loop(previous)

    def _deliver(self, received: Received, value: Any) -> None:
        name = received.name or ""
        handler = self.signal_handlers.get(name)
        if handler is not None:
            self.call_handler(handler, value)
            return
        for fut in self.waiters.get(name, ()):
            if not fut.done():
                fut.set_result(value)
                self._in_transit[fut] = received
                return
        self.buffer.setdefault(name, collections.deque()).append(received)

    def take(self, name: str) -> tuple[bool, Any]:
        """The oldest buffered signal called ``name``: (True, value), or (False, None)."""
        buffered = self.buffer.get(name)
        if not buffered:
            return False, None
        data = buffered.popleft().data
        return True, orjson.loads(data) if data else None

    def wait(self, name: str) -> asyncio.Future[Any]:
        """A future that the next signal called ``name`` resolves."""
        fut: asyncio.Future[Any] = self._inst.loop.create_future()
        self.waiters.setdefault(name, collections.deque()).append(fut)
        self._since[fut] = self._inst.now_ts
        return fut

    def awaited(self) -> list[tuple[str, float]]:
        """``(name, since)`` of each signal wait not answered yet (what a suspending run
        records: ``duro._waits``), oldest first per name."""
        return [(name, self._since.get(fut, 0.0)) for name, futs in self.waiters.items()
                for fut in futs if not fut.done()]

    def done_waiting(self, name: str, fut: asyncio.Future[Any], *, took: bool) -> None:
        """The waiter of ``fut`` is gone; ``took``: it returned the signal to the code.

        A signal handed to a waiter that did not take it (cancelled before it resumed)
        goes back to the front of the buffer, so the next wait gets it.
        """
        waiters = self.waiters.get(name)
        if waiters is not None and fut in waiters:
            waiters.remove(fut)
        self._since.pop(fut, None)
        received = self._in_transit.pop(fut, None)
        if received is not None and not took:
            self.buffer.setdefault(name, collections.deque()).appendleft(received)

    def set_handler(self, name: str, handler: Callable[..., Any]) -> None:
        """Handle signals called ``name``, those buffered so far first."""
        self.signal_handlers[name] = handler
        for received in self.buffer.pop(name, None) or ():
            self.call_handler(handler, orjson.loads(received.data) if received.data
                              else None)

    def call_handler(self, handler: Callable[..., Any], value: Any) -> None:
        """Run a signal handler (an ``async`` one as a task of the workflow). Whatever it
        raises fails the run, like an exception from the workflow's own code."""
        inst = self._inst
        params = [p for p in inspect.signature(handler).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        args: tuple[Any, ...] = ()
        if params:
            hint = hints_of(handler).get(params[0].name, Any)
            args = (convert(value, hint),)
        if inspect.iscoroutinefunction(handler):
            task = inst.loop.create_task(handler(*args))
            self._signal_tasks.add(task)
            task.add_done_callback(self._handler_done)
            return
        previous = _get_running_loop()
        _set_running_loop(inst.loop)
        try:
            handler(*args)
        except BaseException as exc:  # user code: the run fails with it
            inst.fail_with(exc)
        finally:
            _set_running_loop(previous)

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        self._signal_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._inst.fail_with(task.exception())  # type: ignore[arg-type]

    # -- updates -----------------------------------------------------------------------

    def update_accepted(self, update_id: str, name: str, data: bytes | None,
                        headers: Mapping[str, str] | None = None) -> None:
        """Start the handler of an accepted update (or keep the update, if the main
        coroutine already finished)."""
        received = self._receive(MessageKind.UPDATE, name, data, update_id, headers)
        if self._main_finished():
            self._late.append(received)
            return
        entry = self.update_handlers.get(name)
        if entry is None:
            inst = self._inst
            raise NondeterminismError(
                f"nondeterminism in workflow {inst.workflow.name!r} (run {inst.run_id}): the "
                f"history accepted update {name!r} but the code has no handler for it now")
        self._running[update_id] = received
        args = orjson.loads(data) if data else []
        self._inst.loop.create_task(self._run_update(received, entry[0], args))

    async def _run_update(self, received: Received, handler: Callable[..., Any],
                          args: list[Any]) -> None:
        from duro.workflow._instance import Park

        name, update_id = received.name or "", received.update_id or ""
        async def run(call: HandleUpdateInput) -> Any:
            result = handler(*convert_args(handler, list(call.args)))
            return await result if inspect.isawaitable(result) else result

        try:
            interceptors = self._inst.interceptors
            if interceptors:
                result = await chain(interceptors, WorkerInterceptor, "handle_update", run)(
                    HandleUpdateInput(name=name, update_id=update_id, args=tuple(args),
                                      headers=received.headers or {}))
            else:
                result = handler(*convert_args(handler, args))
                if inspect.isawaitable(result):
                    result = await result
            payload = encode(result, what=f"the result of update {name!r}")
            kind = EventKind.UPDATE_COMPLETED
        except (Park, asyncio.CancelledError):
            raise
        except BaseException as exc:  # user code: the update fails
            payload, kind = ErrorInfo.from_exception(exc).to_payload(), EventKind.UPDATE_FAILED
        if self._main_finished():
            return  # too late to count: ending_events() fails it
        self._running.pop(update_id, None)
        self._record(kind, name, update_id, payload)

    def _record(self, kind: str, name: str, update_id: str, payload: bytes) -> None:
        # Replaying too: an outcome the history lacks (the worker died before writing
        # it) is recorded now; one it has is in updates_done, filled before the replay.
        if update_id in self.updates_done:
            return
        self.updates_done.add(update_id)
        self._inst.record(kind, name=name, data=payload,
                          meta=UpdateMeta(update_id=update_id).encode())

    def validate(self, name: str, args: list[Any]) -> Exception | None:
        """Run the validator of an update on the live instance; None means accepted."""
        entry = self.update_handlers.get(name)
        if entry is None:
            known = ", ".join(sorted(self.update_handlers)) or "none"
            return LookupError(f"workflow {self._inst.workflow.name!r} has no update "
                               f"handler {name!r} (registered: {known})")
        validator = entry[1]
        if validator is None:
            return None
        try:
            with self._inst.read_only():
                validator(*convert_args(validator, args))
        except Exception as exc:
            return exc
        except BaseException as exc:  # user code must not kill the worker
            return RuntimeError(f"the validator raised {type(exc).__name__}: {exc!r}")
        return None

    # -- cancel requests ------------------------------------------------------------------

    def cancel_too_late(self) -> bool:
        """A cancel request was recorded: True if the main coroutine already finished (it
        is kept, for the next run if there is one)."""
        received = self._receive(MessageKind.CANCEL)
        if self._main_finished():
            self._late.append(received)
            return True
        return False

    # -- at the run's end ---------------------------------------------------------------

    def carried(self) -> list[Message]:
        """The messages the next run gets at continue-as-new, in the order received:
        those recorded after the main coroutine finished and the signals it never took."""
        kept = [*self._late, *self._in_transit.values()]
        for buffered in self.buffer.values():
            kept.extend(buffered)
        return [r.message() for r in sorted(kept, key=lambda r: r.no)]

    def fail_unfinished(self, *, continuing: bool) -> None:
        """Record (through the host, written with the run's end) ``update_failed`` for every
        update that cannot count: handlers still running, and, unless continuing as new
        (which carries them), updates recorded too late."""
        ended = "continued as new" if continuing else "ended"
        failed = [(r, UNFINISHED) for r in self._running.values()]
        if not continuing:
            failed += [(r, UNHANDLED) for r in self._late if r.kind == MessageKind.UPDATE]
        for received, why in sorted(failed, key=lambda item: item[0].no):
            self._record(EventKind.UPDATE_FAILED, received.name or "", received.update_id or "",
                         ErrorInfo(type="UpdateNotHandledError",
                                   message=why.format(ended=ended)).to_payload())

    def handlers_running(self) -> int:
        """Signal handlers (``async`` ones) and update handlers started and not finished
        (``duro.all_handlers_finished()``; a run that ends with some is warned about)."""
        return len(self._running) + len(self._signal_tasks)

    def unhandled_signals(self) -> int:
        """Signals the run received but its code never took (reported at its end)."""
        return (sum(1 for r in self._late if r.kind == MessageKind.SIGNAL) + len(self._in_transit)
                + sum(len(b) for b in self.buffer.values()))

    def clear(self) -> None:
        self._signal_tasks.clear()
        self.waiters.clear()
        self._in_transit.clear()


def convert_args(fn: Callable[..., Any], args: list[Any]) -> list[Any]:
    """Convert plain JSON arguments to a handler's parameter types."""
    hints = hints_of(fn)
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [convert(a, hints.get(params[i].name, Any)) if i < len(params) else a
            for i, a in enumerate(args)]
