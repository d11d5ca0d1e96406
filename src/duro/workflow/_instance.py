"""One run of a workflow in memory, the deterministic core: events in, commands out.

Whoever drives it feeds events (recorded ones on replay, freshly committed ones live),
and after each event it runs the workflow's loop until nothing is ready. Each durable
operation the code issues takes the next sequence number (``op``) and is handed to the
instance's :class:`Host` (a step to run, a timer to wake it, a child to start, an event
to record); results are delivered strictly in the order they were recorded, so races
replay identically. The instance knows nothing of stores, leases or writes: a worker
holds it in a ``worker/_held.HeldRun``; read-only replays (queries, tests) drive it
through ``workflow/_replayer.py`` with a host that executes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from duro._checks import check_choice
from duro._history import (
    APPROVAL_KINDS,
    BUDGET_SIGNAL,
    CALL_KINDS,
    CHILD_KINDS,
    EXTERNAL_KINDS,
    STEP_KINDS,
    STREAM_KINDS,
    TERMINAL_KINDS,
    AttemptMeta,
    ChildFailedMeta,
    ChildStarted,
    EventKind,
    EventRecord,
    Headers,
    NewEvent,
    RetryMeta,
    RunStartedMeta,
    SearchValue,
    SignalMeta,
    UpdateMeta,
    spend_of,
    usage_of,
)
from duro.budget._budget import Budget, budgets_from_json, with_budget
from duro.errors import (
    BudgetExceededError,
    ChildWorkflowError,
    DuroError,
    ErrorInfo,
    HistoryCorruptError,
    NondeterminismError,
    PayloadDecodeError,
    QueryError,
    StepFailedError,
    StepOutcomeUnknownError,
    exception_message,
)
from duro.interceptors._chain import chain, linked, overriding
from duro.interceptors._worker import (
    ExecuteWorkflowInput,
    HandleQueryInput,
    WorkerInterceptor,
)
from duro.serde import decode, encode
from duro.step._step import Step
from duro.workflow import _guard
from duro.workflow._approval_state import Approvals
from duro.workflow._commands import (
    NULL_HOST,
    ChildCommand,
    Command,
    ContinueAsNew,
    ExternalCommand,
    Host,
    NullHost,
    Park,
    StepCommand,
    TimerCommand,
)
from duro.workflow._external import apply_external
from duro.workflow._ids import default_child_id
from duro.workflow._loop import WorkflowLoop
from duro.workflow._messages import Mailbox, convert_args

if TYPE_CHECKING:
    from duro.workflow._api import Workflow

__all__ = ["NULL_HOST", "ChildCommand", "ContinueAsNew", "Host", "NullHost", "Park",
           "RunInstance", "StepCommand", "TimerCommand"]

_set_running_loop = asyncio.events._set_running_loop
_get_running_loop = asyncio.events._get_running_loop

_PARENT_CLOSE = ("terminate", "request_cancel", "abandon")
# Events a replay passes over: they record what the code did, not an outcome for it.
_SILENT = frozenset({EventKind.MARKER, EventKind.UPDATE_COMPLETED, EventKind.UPDATE_FAILED,
                     *STREAM_KINDS,
                     EventKind.SEARCH_ATTRIBUTES_UPSERTED, *CALL_KINDS})


def _describe(kind: str, name: str | None) -> str:
    return f"{kind} {name!r}" if name else kind


F = TypeVar("F", bound=Callable[..., Any])


def _in_context(method: F) -> F:
    """Run a :class:`RunInstance` entry point in the run's own context (unless already
    inside one): workflow code, its handlers, conditions and ``finally`` blocks never
    see the context variables of the code that happened to deliver an event."""

    @functools.wraps(method)
    def entered(self: RunInstance, *args: Any, **kwargs: Any) -> Any:
        if self._entered:
            return method(self, *args, **kwargs)
        self._entered = True
        try:
            return self.context.run(method, self, *args, **kwargs)
        finally:
            self._entered = False

    return entered  # type: ignore[return-value]


class RunInstance:
    """A workflow run in memory: its loop, its commands, and what its history told it.

    Events go in through :meth:`replay` (a recorded history) and :meth:`apply` (one
    event); commands come out through the :class:`Host`; :meth:`pending`,
    :meth:`next_wake`, ``main`` (the main coroutine's task), ``park_error`` and
    ``failure`` say where the run stands.
    """

    def __init__(
        self, *, workflow: Workflow[Any, Any], run_id: str, workflow_id: str, host: Host,
        interceptors: Sequence[WorkerInterceptor] = (),
        context: contextvars.Context | None = None,
    ) -> None:
        self.workflow = workflow
        self.context = context if context is not None else contextvars.copy_context()
        """The context variables the run's workflow code sees (its tasks each a copy):
        the worker's, whoever's code made the instance deliver an event (a starter's,
        a step's, a querier's): every entry point runs in it (:func:`_in_context`)."""
        self._entered = False
        self.interceptors = interceptors
        """Worker interceptors: their deterministic hooks run in the workflow."""
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.host = host
        # The I/O methods are defined dynamically (all raising), which mypy cannot see.
        self.loop = WorkflowLoop(self)  # type: ignore[abstract]
        self._rng: random.Random | None = None
        self.now_ts = 0.0
        self.next_op = 1
        self.commands: dict[int, Command] = {}
        self.timers: dict[asyncio.TimerHandle, TimerCommand] = {}
        self.recorded: dict[int, tuple[str, str | None]] = {}
        self.markers: set[str] = set()
        self.patch_memo: dict[str, bool] = {}
        self.main: asyncio.Task[Any] | None = None
        self.park_error: DuroError | None = None
        self.replaying = False
        self.cancel_requested = False
        self.active = True  # False once closed: it issues nothing more
        self.querying = False
        self.stream_closed = False
        """``duro.close_stream()`` was called (replay sets it again, as the code runs)."""
        self.deadline_at: float | None = None
        self.parent_run_id: str | None = None
        self.started_at = 0.0
        """When the run started (its ``run_started`` event's time)."""
        self.has_children = False  # issued a child (its end may concern them)
        self.namespace = "default"
        """The run's namespace (from its ``run_started`` event): ``duro.info()``."""
        self.budgets = workflow.budgets
        """The run's budgets: its start's (``run_started``), else its workflow's; a
        ``handle.set_budget`` signal replaces one."""
        self.spent_usd = 0.0
        """What the run's step attempts spent (their recorded usage), counted only
        when it has budgets."""
        self.spent_tokens = 0
        self.headers: Headers | None = None
        """The run's headers (from its ``run_started`` event): ``duro.info().headers``,
        its steps' ``duro.step_info().headers``, its children's."""
        # An exception from workflow code outside the main coroutine (a signal handler):
        # the run fails with it.
        self.failure: BaseException | None = None
        # signals, updates, cancel requests; published state, queries, conditions
        self.mailbox = Mailbox(self)
        self.state: dict[str, Any] = {}
        self.query_handlers: dict[str, Callable[..., Any]] = {}
        self.conditions: list[tuple[Callable[[], bool], asyncio.Future[bool]]] = []
        self.approvals = Approvals(self)
        """``duro.approval()`` calls: waiting, and closed by the history."""

    @property
    def rng(self) -> random.Random:
        """The run's deterministic random source (seeded by the run id).

        Made on first use: its state is 2.5 KB, and most runs never draw a number.
        """
        if self._rng is None:
            self._rng = random.Random(self.run_id)
        return self._rng

    # -- replay --------------------------------------------------------------------

    @_in_context
    def replay(self, history: Sequence[EventRecord], heartbeats: dict[int, Any], *,
               expected_len: int | None = None) -> None:
        """Rebuild the run's state from its recorded history.

        A history that is not whole (a sequence number missing, or fewer events than
        ``expected_len``, the length the run's record says) is not replayed: the run
        would silently run again what the missing events recorded. It is parked with a
        :class:`~duro.errors.HistoryCorruptError` instead.
        """
        gap = _history_gap(history, expected_len)
        if gap is not None:
            self.park_error = HistoryCorruptError(
                f"the history of run {self.run_id} is not whole: {gap}. Restore the "
                f"missing events (or reset the run to before them), then resume it")
            return
        recorded = self.recorded
        # One tuple per distinct (kind, name), shared by all ops that have it: a tuple
        # per op would be 10,000 more live objects for the GC to scan in a long history.
        shared: dict[tuple[str, str | None], tuple[str, str | None]] = {}
        for ev in history:
            if ev.op is not None and ev.kind != EventKind.MARKER:
                if ev.op not in recorded:
                    key = (_group(ev.kind), ev.name)
                    recorded[ev.op] = shared.setdefault(key, key)
            elif ev.kind == EventKind.MARKER and ev.name:
                self.markers.add(ev.name)
            if ev.kind in (EventKind.UPDATE_COMPLETED, EventKind.UPDATE_FAILED) and ev.meta:
                self.mailbox.updates_done.add(UpdateMeta.decode(ev.meta).update_id)
            elif ev.kind in (EventKind.APPROVAL_DECIDED, EventKind.APPROVAL_TIMED_OUT) \
                    and ev.op is not None:
                self.approvals.closed.add(ev.op)
        self.replaying = True
        try:
            for i, ev in enumerate(history):
                self.replaying = i + 1 < len(history)
                # On past the main coroutine's end too: a signal or update recorded after
                # it must be kept (for the next run), as it was live (Mailbox).
                self.apply(ev.kind, ev.op, ev.name, ev.data, ev.meta, ev.ts)
                if self.park_error is not None:
                    break
        finally:
            self.replaying = False
        for op, details in heartbeats.items():
            cmd = self.commands.get(op)
            if isinstance(cmd, StepCommand):
                with contextlib.suppress(orjson.JSONDecodeError):
                    cmd.heartbeat = orjson.loads(details)

    @_in_context
    def apply(
        self, kind: str, op: int | None, name: str | None, data: bytes | None,
        meta: bytes | None, ts: float, *, start_meta: RunStartedMeta | None = None,
    ) -> None:
        """Deliver one event, then run the workflow until nothing is ready.

        ``start_meta``: a ``run_started`` event's meta already read (a run this process
        has just created: what ``meta`` would decode to), read instead of ``meta``."""
        try:
            self._apply(kind, op, name, data, meta, ts, start_meta)
        except DuroError as exc:
            if self.park_error is None:
                self.park_error = exc
            return
        except (ValueError, TypeError, KeyError) as exc:  # a malformed stored event
            if self.park_error is None:
                self.park_error = PayloadDecodeError(
                    f"event {kind!r} (op {op}) of run {self.run_id} cannot be read: {exc}")
            return
        self.run_ready()

    def _apply(
        self, kind: str, op: int | None, name: str | None, data: bytes | None,
        meta: bytes | None, ts: float, start_meta: RunStartedMeta | None = None,
    ) -> None:
        self.now_ts = ts
        if kind == EventKind.RUN_STARTED:
            self.started_at = ts
            links = start_meta if start_meta is not None else \
                RunStartedMeta.decode(meta) if meta else None
            if links is not None:
                self.deadline_at = links.deadline_at
                self.parent_run_id = links.parent_run_id
                self.headers = links.headers
                self.namespace = links.namespace or "default"
                if links.budgets:
                    self.budgets = budgets_from_json(list(links.budgets))
            self._start_main(data)
        elif kind in STEP_KINDS:
            cmd = self._expect(op, "step", name, kind)
            assert isinstance(cmd, StepCommand)
            if self.budgets and meta is not None and b'"usage"' in meta:
                self._count_spend(meta)
            if kind == EventKind.STEP_STARTED:
                started = AttemptMeta.decode(meta)
                cmd.started = started.attempt
                if started.awaiting and cmd.state not in ("cancelled", "done"):
                    cmd.state = "remote"  # its outcome comes from outside, by its token
                    cmd.awaiting_until = started.deadline
                return
            if kind == EventKind.STEP_RETRYING:
                retry = RetryMeta.decode(meta)
                cmd.attempts = retry.attempt if retry.attempt is not None else cmd.attempts + 1
                cmd.retry_at = retry.retry_at
                if retry.first_started is not None:
                    cmd.first_started = retry.first_started
                if retry.heartbeat is not None:
                    cmd.heartbeat = retry.heartbeat
                if cmd.state not in ("cancelled", "done"):
                    cmd.state = "backoff"
                return
            if cmd.state == "cancelled" or cmd.future.done():
                return
            cmd.state = "done"
            if kind == EventKind.STEP_COMPLETED:
                value = _decode_result(data, cmd.step, op)
                _drop_cancel_watch(cmd)
                cmd.future.set_result(value)
            else:
                _drop_cancel_watch(cmd)
                cmd.future.set_exception(_step_error(cmd, data, meta))
        elif kind == EventKind.TIMER_FIRED:
            cmd = self._expect(op, "timer", None, kind)
            assert isinstance(cmd, TimerCommand)
            if cmd.state in ("cancelled", "done"):
                return
            cmd.state = "done"
            self.timers.pop(cmd.handle, None)
            if not cmd.handle.cancelled():
                self.loop.ready.append(cmd.handle)
        elif kind in CHILD_KINDS:
            self._apply_child(kind, op, name, data, meta)
        elif kind in EXTERNAL_KINDS:
            cmd = self._expect(op, "external", name, kind)
            assert isinstance(cmd, ExternalCommand)
            apply_external(cmd, kind, data)
        elif kind == EventKind.SIGNAL_RECEIVED:
            if name == BUDGET_SIGNAL:
                self._set_budget(data)
                return
            self.mailbox.signal(name or "", data,
                                SignalMeta.decode(meta).headers if meta else None)
        elif kind == EventKind.STATE_SET:
            self.state[name or ""] = orjson.loads(data) if data else None
        elif kind == EventKind.UPDATE_ACCEPTED:
            update = UpdateMeta.decode(meta)
            self.mailbox.update_accepted(update.update_id, name or "", data, update.headers)
        elif kind in APPROVAL_KINDS:
            self.approvals.apply(kind, op, name, meta)
        elif kind in _SILENT or kind in TERMINAL_KINDS:
            pass
        elif kind == EventKind.CANCEL_REQUESTED:
            if self.mailbox.cancel_too_late():
                return
            if not self.cancel_requested and self.main is not None:
                self.main.cancel()
            self.cancel_requested = True
        else:
            raise NondeterminismError(
                f"history of run {self.run_id} has an event this version of duro does not "
                f"know: {kind!r} at op {op}"
            )

    def _apply_child(self, kind: str, op: int | None, name: str | None, data: bytes | None,
                     meta: bytes | None) -> None:
        cmd = self._expect(op, "child", name, kind)
        assert isinstance(cmd, ChildCommand)
        if kind == EventKind.CHILD_STARTED:
            started = ChildStarted.decode(data)
            cmd.run_id = started.run_id
            cmd.workflow_id = started.workflow_id
            if cmd.state in ("new", "starting"):
                cmd.state = "started"
            return
        if cmd.state == "cancelled" or cmd.future.done():
            cmd.state = "done"
            return
        cmd.state = "done"
        if kind == EventKind.CHILD_COMPLETED:
            cmd.future.set_result(decode(data, cmd.workflow.return_hint,
                                         what=f"result of child {cmd.workflow_id!r}"))
            return
        status = ChildFailedMeta.decode(meta).status
        cause = ErrorInfo.from_payload(data) if data else None
        what = "was not started" if status == "not_started" else f"ended {status}"
        # The root cause, not the child's whole message: that may quote its own child's,
        # and so on (the chain is in ``cause``).
        cmd.future.set_exception(ChildWorkflowError(
            f"child workflow {cmd.workflow_id!r} ({cmd.workflow.name}) {what}"
            + (f": {cause.chain()[-1]}" if cause else ""),
            workflow_id=cmd.workflow_id, status=status, cause=cause))

    def _count_spend(self, meta: bytes) -> None:
        raw = orjson.loads(meta)
        if isinstance(raw, dict):
            usd, tokens = spend_of(usage_of(raw))
            self.spent_usd += usd
            self.spent_tokens += tokens

    def _set_budget(self, data: bytes | None) -> None:
        """A ``handle.set_budget`` signal: the budget of its name is replaced (checked by
        the sender; a damaged one is passed over)."""
        try:
            raw = orjson.loads(data) if data else None
            new = Budget.from_json(raw) if isinstance(raw, dict) else None
        except (orjson.JSONDecodeError, DuroError):
            new = None
        if new is not None:
            self.budgets = with_budget(self.budgets, new)
            for cmd in self.commands.values():  # paused steps try again at once
                if isinstance(cmd, StepCommand) and cmd.budget_paused:
                    cmd.budget_paused = False
                    cmd.retry_at = None

    def park(self, error: DuroError) -> None:
        """Park the run with ``error`` (a reason found outside its code: a history or a
        message that cannot be read), unless it already has a reason to park."""
        if self.park_error is None:
            self.park_error = error

    def record(self, kind: str, *, name: str | None, data: bytes | None = None,
               meta: bytes | None = None, op: int | None = None) -> None:
        """Have the host write an event the workflow produced (a marker, published
        state, an update's outcome) with the run's next write, stamped with workflow
        time."""
        self.host.record(self, NewEvent(kind=kind, ts=self.now_ts, op=op, name=name,
                                        data=data, meta=meta))

    def fail_with(self, exc: BaseException) -> None:
        """Fail the run with an exception workflow code raised outside its main coroutine
        (a signal handler), as if the main coroutine had raised it."""
        if self.failure is None and not isinstance(exc, asyncio.CancelledError):
            self.failure = exc

    @_in_context
    def validate_update(self, name: str, args: list[Any]) -> Exception | None:
        """Run the validator of an update on the live instance; None means accepted."""
        return self.mailbox.validate(name, args)

    @contextlib.contextmanager
    def read_only(self) -> Iterator[None]:
        """Run code against this instance that must not issue operations (queries,
        validators)."""
        previous = _get_running_loop()
        _set_running_loop(self.loop)
        self.querying = True
        try:
            yield
        finally:
            self.querying = False
            _set_running_loop(previous)

    @_in_context
    def query(self, name: str, args: list[Any],
              headers: Mapping[str, str] | None = None) -> Any:
        """Answer a query from this instance's current state (through the worker
        interceptors' ``handle_query``; ``headers``: the asker's)."""
        handler = self.query_handlers.get(name)
        if handler is None:
            known = ", ".join(sorted(self.query_handlers)) or "none"
            raise QueryError(f"workflow {self.workflow.name!r} has no query {name!r} "
                             f"(registered: {known})")

        def answer(call: HandleQueryInput) -> Any:
            return handler(*convert_args(handler, list(call.args)))

        try:
            with self.read_only():
                if self.interceptors:
                    result = chain(self.interceptors, WorkerInterceptor, "handle_query",
                                   answer)(HandleQueryInput(name=name, args=tuple(args),
                                                            headers=headers or {}))
                else:
                    result = handler(*convert_args(handler, args))
        except QueryError:
            raise
        except BaseException as exc:  # user code must not take the caller down
            raise QueryError(f"query {name!r} failed: {type(exc).__name__}: "
                             f"{exception_message(exc)}") from exc
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise QueryError(f"query handler {name!r} must be a plain function, not async")
        return result

    def _expect(
        self, op: int | None, kind: str, name: str | None, event: str
    ) -> Command:
        cmd = self.commands.get(op) if op is not None else None
        if cmd is None:
            raise NondeterminismError(
                f"nondeterminism in workflow {self.workflow.name!r} (run {self.run_id}) at "
                f"seq {op}: the history records {_describe(kind, name)} ({event}) but the "
                f"workflow code did not issue an operation with seq {op}",
                seq=op,
            )
        cmd_name = _command_name(cmd)
        if cmd.kind != kind or (kind in ("step", "child", "external") and cmd_name != name):
            raise NondeterminismError(
                f"nondeterminism in workflow {self.workflow.name!r} (run {self.run_id}) at "
                f"seq {op}: the history records {_describe(kind, name)} but the code now "
                f"issues {_describe(cmd.kind, cmd_name)}",
                seq=op,
            )
        return cmd

    def _start_main(self, data: bytes | None) -> None:
        bound = self.workflow.decode_input(data, what=f"input of run {self.run_id}")
        hooks = (overriding(self.interceptors, WorkerInterceptor, "execute_workflow")
                 if self.interceptors else None)
        main = (self._intercepted_main(hooks, tuple(bound.args), bound.kwargs) if hooks
                else self.workflow.fn(*bound.args, **bound.kwargs))
        self.main = self.loop.create_task(main, name=f"workflow:{self.workflow_id}")

    async def _intercepted_main(self, hooks: Sequence[WorkerInterceptor],
                                args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The workflow function through the ``execute_workflow`` of ``hooks`` (the
        interceptors that override it)."""
        async def execute(call: ExecuteWorkflowInput) -> Any:
            return await self.workflow.fn(*call.args, **call.kwargs)

        run = linked(hooks, "execute_workflow", execute)
        return await run(ExecuteWorkflowInput(
            workflow=self.workflow.name, workflow_id=self.workflow_id, run_id=self.run_id,
            args=args, kwargs=kwargs, headers=self.headers or {}))

    # -- stepping ----------------------------------------------------------------------

    def run_ready(self) -> None:
        """Run the workflow's ready callbacks until none is left."""
        loop = self.loop
        ready = loop.ready
        if not ready and not self.conditions:
            return
        previous = _get_running_loop()
        _set_running_loop(loop)
        loop._running = True
        token = _guard.enter(self)
        try:
            while self.park_error is None:
                while ready and self.park_error is None:
                    handle = ready.popleft()
                    if not handle._cancelled:
                        try:
                            handle._run()
                        except (SystemExit, KeyboardInterrupt) as exc:
                            # asyncio lets these two through every task and callback
                            # (the task has stored it too): here it is workflow code's,
                            # and it fails the run, not the worker.
                            self.fail_with(exc)
                if not (self.conditions and self._check_conditions()):
                    break
        except _guard.GuardInterrupt:
            pass  # the watchdog set park_error before interrupting
        finally:
            _guard.exit(token)
            loop._running = False
            _set_running_loop(previous)

    def _check_conditions(self) -> bool:
        """Resolve the futures of ``wait_condition`` calls whose condition now holds."""
        changed = False
        keep = []
        for fn, fut in self.conditions:
            if fut.done():
                continue
            try:
                met = fn()
            except BaseException as exc:  # user code: raised at the wait_condition
                fut.set_exception(exc)
                changed = True
                continue
            if met:
                fut.set_result(True)
                changed = True
            else:
                keep.append((fn, fut))
        self.conditions = keep
        return changed

    def absorb_error(self, exc: BaseException) -> bool:
        """Whether an unhandled error seen by the loop is duro's own (not worth a log)."""
        return (isinstance(exc, (Park, _guard.GuardInterrupt, ContinueAsNew))
                or exc is self.park_error)

    # -- commands from workflow code -------------------------------------------------

    def _issue(self, kind: str, name: str | None) -> int:
        if not self.active:
            raise Park()  # the instance was dropped: its coroutines are being closed
        if self.querying:
            raise QueryError("queries and update validators must not run steps, start "
                             "timers or children: they read the workflow's state only")
        op = self.next_op
        self.next_op += 1
        recorded = self.recorded.get(op)
        if recorded is not None and recorded != (kind, name):
            err = NondeterminismError(
                f"nondeterminism in workflow {self.workflow.name!r} (run {self.run_id}) at "
                f"seq {op}: the history records {_describe(*recorded)} but the code now "
                f"issues {_describe(kind, name)}",
                seq=op,
            )
            if self.park_error is None:
                self.park_error = err
            raise Park()
        return op

    def schedule_step(
        self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[Any]:
        """Issue a step; the future resolves from history or from its execution."""
        arity = step.positional_arity
        if kwargs or arity is None or not arity[0] <= len(args) <= arity[1]:
            try:
                step.signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"step {step.name!r} called with wrong arguments: "
                                f"{exc}") from None
        payload = None
        if step.queue is not None:  # it travels to another worker: JSON now, or fail here
            payload = encode({"args": list(args), "kwargs": kwargs},
                             what=f"the arguments of step {step.name!r}")
        op = self._issue("step", step.name)
        fut = self.loop.create_future()
        cmd = StepCommand(op=op, step=step, args=args, kwargs=kwargs, future=fut,
                          payload=payload)
        self.commands[op] = cmd
        cmd.on_done = lambda f: self._on_step_future_done(cmd)
        fut.add_done_callback(cmd.on_done)
        if not self.replaying:
            self.host.step_issued(self, cmd)
        return fut

    def schedule_child(
        self, workflow: Workflow[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
        workflow_id: str | None, parent_close: str, execution_timeout: float | None,
        search_attributes: dict[str, SearchValue] | None = None,
    ) -> asyncio.Future[Any]:
        """Issue a child workflow; the future resolves when the child ends."""
        workflow.check_arguments(args, kwargs, what=f"child workflow {workflow.name!r} called")
        check_choice(parent_close, "parent_close", _PARENT_CLOSE)
        payload = workflow.encode_input(
            args, kwargs, what=f"the arguments of child workflow {workflow.name!r}")
        op = self._issue("child", workflow.name)
        fut = self.loop.create_future()
        cmd = ChildCommand(op=op, workflow=workflow, input=payload, future=fut,
                           workflow_id=workflow_id or default_child_id(self.workflow_id,
                                                                        self.run_id, op),
                           parent_close=parent_close, execution_timeout=execution_timeout,
                           search_attributes=search_attributes)
        self.commands[op] = cmd
        self.has_children = True
        fut.add_done_callback(lambda f: self._on_child_future_done(cmd))
        if not self.replaying:
            self.host.child_issued(self, cmd)
        return fut

    def _on_child_future_done(self, cmd: ChildCommand) -> None:
        if cmd.future.cancelled() and cmd.state not in ("done", "cancelled"):
            cmd.state = "cancelled"
            if not self.replaying:
                self.host.child_cancelled(self, cmd)

    def _on_step_future_done(self, cmd: StepCommand) -> None:
        if cmd.future.cancelled() and cmd.state not in ("done", "cancelled"):
            cmd.state = "cancelled"
            self.host.step_cancelled(self, cmd)

    def start_timer(self, handle: asyncio.TimerHandle) -> None:
        """Called by the loop for ``call_at``: a durable timer."""
        op = self._issue("timer", None)
        cmd = TimerCommand(op=op, fire_at=handle.when(), handle=handle, set_at=self.now_ts)
        self.commands[op] = cmd
        self.timers[handle] = cmd
        if not self.replaying:
            self.host.timer_started(self, cmd)

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None:
        cmd = self.timers.pop(handle, None)
        if cmd is not None and cmd.state == "pending":
            cmd.state = "cancelled"

    def patched(self, change_id: str) -> bool:
        memo = self.patch_memo.get(change_id)
        if memo is not None:
            return memo
        if change_id in self.markers:
            value = True
        elif self.replaying:
            value = False
        else:
            self.record(EventKind.MARKER, name=change_id)
            self.markers.add(change_id)
            value = True
        self.patch_memo[change_id] = value
        return value

    # -- where the run stands ----------------------------------------------------------

    def pending(self) -> list[Command]:
        """Commands still waiting for an outcome, in op order."""
        return [c for c in self.commands.values() if c.state not in ("done", "cancelled")]

    def next_wake(self) -> float | None:
        """When the earliest timer or retry backoff is due."""
        times = [c.fire_at for c in self.commands.values()
                 if isinstance(c, TimerCommand) and c.state == "pending"]
        times += [c.retry_at or 0.0 for c in self.commands.values()
                  if isinstance(c, StepCommand) and c.state in ("backoff", "new")]
        times += [c.awaiting_until for c in self.commands.values()
                  if isinstance(c, StepCommand) and c.state == "remote"
                  and c.awaiting_until is not None]
        if self.deadline_at is not None:
            times.append(self.deadline_at)
        due = min(times, default=math.inf)
        # An infinite timer (asyncio.sleep(math.inf)) never fires: the run waits for a
        # message (a cancel, a signal) with no wake-up, as plain asyncio would.
        return due if due < math.inf else None

    @_in_context
    def close(self) -> None:
        """Drop the workflow's coroutines without letting them issue anything more.

        Closing raises GeneratorExit at each await; with the instance inactive, any step
        or timer a ``finally`` block tries to issue is refused instead of running outside
        the workflow's durability.
        """
        self.active = False
        tasks = [t for t in self.loop.tasks if not t.done()]
        previous = _get_running_loop()
        _set_running_loop(self.loop)
        try:
            for task in tasks:
                task._log_destroy_pending = False  # type: ignore[attr-defined]  # dropped on purpose
                coro = task.get_coro()
                with contextlib.suppress(BaseException):  # user finally blocks
                    coro.close()
                # The task and the future it waited on refer to each other (its wake-up
                # callback): cancelling the future drops the callback.
                waiter = getattr(task, "_fut_waiter", None)
                if waiter is not None:
                    waiter.cancel()
        finally:
            _set_running_loop(previous)
        self.loop.close()
        # Break the cycles (the loop and the instance, and tasks, futures, timer handles
        # and commands that refer back to the loop) so that reference counting frees a
        # closed run at once: otherwise ~20 objects per run wait for the cyclic
        # collector, which a worker makes run rarely (measured: 60,000 started and
        # evicted runs held ~140 MB more at peak).
        self.loop.detach()
        self.loop.tasks.clear()
        self.loop.ready.clear()
        self.timers.clear()
        self.commands.clear()
        self.conditions.clear()
        self.approvals.clear()
        self.mailbox.clear()
        self.main = None
        # The host may refer back to the instance (a worker's HeldRun does): forget it,
        # for the same reason, and because a closed run has nothing more to report.
        self.host = NULL_HOST


def _drop_cancel_watch(cmd: StepCommand) -> None:
    """Unhook a step future's cancellation callback before the future gets its outcome.

    The callback only acts on a cancelled future, so for an outcome it would be a no-op;
    left in place it still costs a loop callback per step, in every replay.
    """
    if cmd.on_done is not None:
        cmd.future.remove_done_callback(cmd.on_done)
        cmd.on_done = None


def _decode_result(data: bytes | None, step: Step[Any, Any], op: int | None) -> Any:
    """A step's recorded result, converted to its return type."""
    return decode(data, step.return_hint,
                  what=lambda: f"result of step {step.name!r} (seq {op})")


def _command_name(cmd: Command) -> str | None:
    if isinstance(cmd, StepCommand):
        return cmd.step.name
    if isinstance(cmd, ChildCommand):
        return cmd.workflow.name
    return cmd.name if isinstance(cmd, ExternalCommand) else None


def _step_error(cmd: StepCommand, data: bytes | None, meta: bytes | None) -> StepFailedError:
    """What the workflow's ``await`` of a step raises, from its ``step_failed`` event."""
    attempt = AttemptMeta.decode(meta)
    cause = ErrorInfo.from_payload(data)
    if attempt.exceeded is not None:
        over = attempt.exceeded
        return BudgetExceededError(
            f"step {cmd.step.name!r} was not run: budget {over.budget!r} is spent "
            f"({over.spent:g} of {over.limit:g} {over.unit})", step=cmd.step.name,
            cause=cause, attempts=attempt.attempt, budget=over.budget, unit=over.unit,
            limit=over.limit, spent=over.spent)
    if attempt.outcome_unknown:
        return StepOutcomeUnknownError(
            f"step {cmd.step.name!r} (at most once) started attempt {attempt.attempt} and "
            f"its outcome is unknown (its worker was lost, or it timed out): it may or may "
            f"not have taken effect, and will not be run again", step=cmd.step.name, cause=cause,
            attempts=attempt.attempt)
    return StepFailedError(
        f"step {cmd.step.name!r} failed after {attempt.attempt} attempt(s): {cause}",
        step=cmd.step.name, cause=cause, attempts=attempt.attempt)


def _history_gap(history: Sequence[EventRecord], expected_len: int | None) -> str | None:
    """What is missing from a history, or None when it is whole: its sequence numbers
    follow each other (a store's start at 0; an exported history may be numbered from 1),
    and there are at least ``expected_len`` of them."""
    first = history[0].seq if history else 0
    for i, ev in enumerate(history):
        if ev.seq != first + i:
            return f"event {first + i} is missing (the next stored one is {ev.seq})"
    if expected_len is not None and len(history) < expected_len:
        return (f"it has {len(history)} events but its run records {expected_len} "
                f"(the last {expected_len - len(history)} are missing)")
    return None


def _group(kind: str) -> str:
    if kind in STEP_KINDS:
        return "step"
    if kind in CHILD_KINDS:
        return "child"
    if kind == EventKind.TIMER_FIRED:
        return "timer"
    if kind in APPROVAL_KINDS:
        return "approval"
    if kind in CALL_KINDS:
        return "call"
    return "external" if kind in EXTERNAL_KINDS else kind
