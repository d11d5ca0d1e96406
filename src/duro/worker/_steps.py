"""Running one step attempt: timeouts, heartbeats, and turning errors into records."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import orjson

from duro.errors import StepTimeoutError, StoreError
from duro.interceptors._chain import linked
from duro.interceptors._worker import ExecuteStepInput, WorkerInterceptor
from duro.serde import encode
from duro.step._step import Step, StepInfo, StreamOpener, _current_step
from duro.workflow._instance import StepCommand

__all__ = ["cancelled_here", "run_attempt"]

log = logging.getLogger("duro.worker")


def cancelled_here(exc: BaseException) -> bool:
    """Whether ``exc``, caught around a step attempt, is the worker cancelling the task
    that runs it (the step is abandoned) rather than the step's own code raising
    ``CancelledError`` (or anything else): that is just a failed attempt."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def run_attempt(
    cmd: StepCommand, info: StepInfo, executor: Executor, deadline: float | None,
    on_heartbeat_saved: Any, hooks: Sequence[WorkerInterceptor] = (),
    streams: StreamOpener | None = None, watchers: Sequence[WorkerInterceptor] = (),
) -> bytes:
    """Run one attempt of a step (through the interceptors' ``execute_step``) and return
    its encoded result.

    ``hooks``: the interceptors that override ``execute_step`` (the worker's
    ``step_hooks``), first to last; ``watchers``: those that override
    ``attempt_started`` (the worker's ``attempt_hooks``), told of the attempt's start
    and, with what it raised, of its end.

    ``deadline`` is a ``loop.time()`` limit (the per-attempt and overall timeouts
    combined). ``streams`` makes the attempt's ``duro.stream()`` buffer at its first
    chunk; what it buffered is written before this returns or raises (but when the
    attempt is cancelled), so the caller records the outcome of a complete stream.
    Raises whatever the step raised, or StepTimeoutError (or StoreError: the stream
    could not be written).
    """
    step = cmd.step
    loop = asyncio.get_running_loop()
    hb_timeout = step.heartbeat_timeout
    timeout_cm: asyncio.Timeout | None = None
    last_saved = 0.0

    def limit() -> float | None:
        options = [d for d in (deadline, loop.time() + hb_timeout if hb_timeout else None)
                   if d is not None]
        return min(options) if options else None

    def beat(details: Any) -> None:
        nonlocal last_saved
        if details is not None:
            cmd.heartbeat = details
        if timeout_cm is not None and hb_timeout:
            timeout_cm.reschedule(limit())
        now = time.monotonic()
        if details is not None and now - last_saved >= 1.0:
            last_saved = now
            on_heartbeat_saved(cmd)

    def heartbeat(details: Any) -> None:
        if details is not None:  # in the step's own thread: a refusal raises there
            details = orjson.loads(encode(details, what="heartbeat details"))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            beat(details)
        else:
            loop.call_soon_threadsafe(beat, details)

    info._on_heartbeat = heartbeat
    info._streams = streams
    _current_step.set(info)
    # Watchers (attempt_started) begin here, in the attempt's context, and end when it
    # is over, told what it raised (those begun, even if a later one's start raised).
    # One watcher (tracing, say: the common case) is called as it is, without the list
    # (and without _started's and _ended's calls: ~0.1 µs each, every traced attempt).
    ends: list[Callable[[BaseException | None], None]] | None = \
        [] if len(watchers) > 1 else None
    end: Callable[[BaseException | None], None] | None = None
    error: BaseException | None = None
    try:
        if ends is not None:
            attempt_started(watchers, info, ends)
        elif watchers:
            try:
                end = watchers[0].attempt_started(info)
            except Exception:
                log.exception("interceptor %r failed in attempt_started", watchers[0])
        when = limit()
        try:
            call = (_call(step, cmd.args, cmd.kwargs, executor, loop) if not hooks
                    else _intercepted(cmd, info, executor, loop, hooks))
            if when is None:
                result = await call
            else:
                async with asyncio.timeout_at(when) as timeout_cm:
                    result = await call
        except TimeoutError:
            if timeout_cm is not None and timeout_cm.expired():
                info.cancelled = True
                await _end_stream(info, failed=True)
                raise StepTimeoutError(
                    f"step {step.name!r} attempt {info.attempt} timed out"
                    + (" (no heartbeat)" if hb_timeout else "")
                ) from None
            await _end_stream(info, failed=True)
            raise
        except BaseException as exc:
            if cancelled_here(exc):
                info._streams = None
                if info._stream is not None:
                    info._stream.seal()  # abandoned: what it buffered is dropped
                    info._stream = None
            else:
                await _end_stream(info, failed=True)
            raise
        finally:
            # The attempt is over (a sync step abandoned on timeout may still beat:
            # ignored). Also breaks a reference cycle (the task's context holds ``info``,
            # whose callback holds the command, which holds the task) that would leave
            # each step's objects to the cyclic garbage collector (as would the stream's
            # buffer, which holds ``info``). A later ``duro.stream()`` from that thread
            # does nothing.
            info._on_heartbeat = None
            info._streams = None
        if info._stream is not None:
            await _end_stream(info, failed=False)
        return encode(result, what=f"the result of step {step.name!r}")
    except BaseException as exc:
        error = exc
        raise
    finally:
        if end is not None:
            try:
                end(error)
            except Exception:
                log.exception("an attempt_started hook's end failed: %r", end)
        elif ends:
            attempt_ended(ends, error)
        error = None  # the exception's traceback holds this frame: no cycle left


async def _end_stream(info: StepInfo, *, failed: bool) -> None:
    """Write what the attempt streamed and take no more. After a failed attempt a
    failed write is only logged: the step's own error is what is recorded."""
    info._streams = None  # first: a late duro.stream() must not open another buffer
    sink = info._stream
    if sink is None:
        return
    info._stream = None
    if not failed:
        await sink.close()
        return
    try:
        await sink.close()
    except StoreError as exc:
        log.warning("the stream of step %s of run %s was not all written: %s",
                    info.step, info.run_id, exc)


async def _call(step: Step[Any, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
                executor: Executor, loop: asyncio.AbstractEventLoop) -> Any:
    if step.is_async:
        return await step.fn(*args, **kwargs)
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, step.fn, *args, **kwargs)
    return await loop.run_in_executor(executor, call)


# A frozen dataclass's __init__ sets each field through object.__setattr__: built from its
# slots' descriptors instead (as _history.event_records builds events), per attempt.
_new_input = object.__new__
_set_step, _set_args, _set_kwargs, _set_info = (
    ExecuteStepInput.__dict__[name].__set__ for name in ("step", "args", "kwargs", "info"))


def attempt_started(watchers: Sequence[WorkerInterceptor], info: StepInfo,
                    ends: list[Callable[[BaseException | None], None]]) -> None:
    """Each watcher's ``attempt_started``, first to last, what each returned to be told
    of the end added to ``ends`` as it comes (what one raises is logged: a watcher's bug
    costs the attempt nothing)."""
    for watcher in watchers:
        end = _started(watcher, info)
        if end is not None:
            ends.append(end)


def attempt_ended(ends: Sequence[Callable[[BaseException | None], None]],
                  error: BaseException | None) -> None:
    """Tell the watchers that began an attempt of its end, last to first."""
    for end in reversed(ends):
        _ended(end, error)


def _started(watcher: WorkerInterceptor, info: StepInfo
             ) -> Callable[[BaseException | None], None] | None:
    """One watcher's ``attempt_started`` (what it raises is logged, as by
    :func:`attempt_started`)."""
    try:
        return watcher.attempt_started(info)
    except Exception:
        log.exception("interceptor %r failed in attempt_started", watcher)
        return None


def _ended(end: Callable[[BaseException | None], None], error: BaseException | None) -> None:
    """Tell one watcher of the attempt's end (what it raises is logged)."""
    try:
        end(error)
    except Exception:
        log.exception("an attempt_started hook's end failed: %r", end)


def _intercepted(cmd: StepCommand, info: StepInfo, executor: Executor,
                 loop: asyncio.AbstractEventLoop,
                 hooks: Sequence[WorkerInterceptor]) -> Awaitable[Any]:
    """:func:`_call` through the interceptors' ``execute_step`` (``hooks``: those that
    override it; they may change the arguments: the step gets theirs): what the first
    hook returns, to be awaited (no coroutine of its own around the hooks: each layer
    costs every step attempt)."""
    def execute(call: ExecuteStepInput) -> Awaitable[Any]:
        return _call(cmd.step, call.args, call.kwargs, executor, loop)

    input = _new_input(ExecuteStepInput)  # ExecuteStepInput(step=..., ...), at half the cost
    _set_step(input, cmd.step.name)
    _set_args(input, cmd.args)
    _set_kwargs(input, cmd.kwargs)
    _set_info(input, info)
    if len(hooks) == 1:  # the common case (tracing, say): no chain to build per attempt
        return hooks[0].execute_step(input, execute)
    return linked(hooks, "execute_step", execute)(input)
