"""The Engine: the client API, with an embedded worker by default."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, TypeVar

from duro._checks import check_choice, check_count, check_id, check_seconds
from duro._clock import Clock, SystemClock
from duro._history import EventKind, MessageKind
from duro.client._handle import WorkflowHandle
from duro.client._records import RunInfo
from duro.client._schedules import Schedules
from duro.errors import DuroError, InvalidArgumentError, QueryError, RunNotFoundError
from duro.serde import CodecChain, PayloadConverter, encode
from duro.store import (
    Claim,
    IdConflictPolicy,
    IdReusePolicy,
    Message,
    RunLinks,
    RunRecord,
    RunStatus,
    Store,
    open_store,
)
from duro.store._records import Placement, QueueConfig, QueueStats
from duro.store._url import redact
from duro.worker import Worker
from duro.worker._options import WORKER_OPTIONS, check_options
from duro.worker._retention import RetentionPolicy
from duro.worker._worker import DEFAULT_MAX_CHILD_DEPTH, Outcome
from duro.workflow._api import Workflow, lookup_workflow, registered_workflows

__all__ = ["Engine"]

R = TypeVar("R")
log = logging.getLogger("duro")

_PRIORITY = 2**31 - 1
"""Priorities are 32-bit integers in the store (PostgreSQL's ``integer``)."""
_ON_CONFLICT = ("use_existing", "fail")
_ON_REUSE = ("use_existing", "allow", "allow_failed", "fail")
_ON_DEDUP = ("use_existing", "fail")
_STATUSES = tuple(s.value for s in RunStatus)


class Engine:
    """Start, inspect and control workflow runs; run them too (embedded worker).

    Use as ``async with duro.Engine("sqlite:///duro.db") as engine: ...``.

    Args:
        url: The store: ``sqlite:///path/to.db`` (relative) or ``sqlite:////abs/path.db``.
        worker: Run an embedded worker in this process (default True).
        workflows: The workflows the worker runs; defaults to every workflow
            registered (imported) when the engine opens.
        clock: Durable time; pass ``duro.testing.ManualClock`` to control it.
        synchronous: SQLite's synchronous pragma (``FULL`` by default).
        store: An open-able store to use instead of opening ``url``.

    The other options are the embedded worker's, as :class:`duro.worker.Worker`
    documents them (same names, same defaults): ``max_active``, ``max_cached``,
    ``max_threads``, ``lease``, ``poll_interval``, ``workflow_task_timeout``,
    ``history_warning``, ``history_limit``, ``queues`` (the queues this worker serves,
    all by default), ``declare`` (queue limits to store; by default those declared with
    :class:`duro.Queue`), ``retention``, ``lookahead``, ``tune_gc``, ``max_recoveries``,
    ``max_child_depth``. They are checked here, so a value that cannot work fails where
    it is written (``InvalidArgumentError``), and a misspelled one is a type error.

    ``codec``: the :class:`duro.serde.CodecChain` payloads are stored through
    (compression, encryption, offload), for the client's writes and reads here as for
    the worker's; every process using the store needs a chain that can decode them.
    """

    def __init__(
        self,
        url: str = "sqlite:///duro.db",
        *,
        worker: bool = True,
        workflows: Iterable[Workflow[Any, Any]] | None = None,
        clock: Clock | None = None,
        synchronous: str | None = None,
        store: Store | None = None,
        max_active: int = 10_000,
        max_cached: int = 2000,
        max_threads: int = 32,
        lease: float = 5.0,
        poll_interval: float = 0.2,
        workflow_task_timeout: float = 2.0,
        history_warning: int = 10_000,
        history_limit: int = 100_000,
        queues: Sequence[str] | None = None,
        declare: Sequence[QueueConfig] | None = None,
        retention: RetentionPolicy | None = None,
        lookahead: float = 5.0,
        tune_gc: bool = True,
        codec: CodecChain | None = None,
        max_recoveries: int = 10,
        max_child_depth: int | None = DEFAULT_MAX_CHILD_DEPTH,
    ) -> None:
        # The worker's options, by the names of its parameters (a unit test checks that
        # this signature has each of them, with the same default).
        given = locals()
        worker_options = {name: given[name] for name in WORKER_OPTIONS}
        check_options(worker_options)
        self.url = url
        self.clock = clock or SystemClock()
        self.payloads = PayloadConverter(codec)
        options: dict[str, Any] = {}
        if synchronous is not None:
            options["synchronous"] = synchronous
        self.store: Store = store or open_store(url, **options)
        self._run_worker = worker
        self._workflows = list(workflows) if workflows is not None else None
        self._worker_options = worker_options
        self.worker: Worker | None = None
        self.schedules = Schedules(self)
        self._open = False

    def __repr__(self) -> str:
        return f"<duro.Engine {redact(self.url)}>"  # reprs end up in logs and tracebacks

    async def __aenter__(self) -> Engine:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the store and start the embedded worker."""
        if self._open:
            return
        await self.store.open()
        self._open = True
        if self._run_worker:
            workflows = ({w.name: w for w in self._workflows} if self._workflows is not None
                         else registered_workflows())
            from duro._queues import declared_queues

            options = dict(self._worker_options)
            if options["declare"] is None:
                options["declare"] = [q.config for q in declared_queues().values()]
            self.worker = Worker(self.store, workflows, clock=self.clock, **options)
            try:
                await self.worker.start()
            except BaseException:
                await self.store.close()
                self._open = False
                raise

    async def close(self) -> None:
        """Stop the worker (releasing its runs at once) and close the store."""
        if not self._open:
            return
        self._open = False
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None
        await self.store.close()

    async def run_forever(self) -> None:
        """Serve as a worker until cancelled.

        Raises:
            DatabaseFileLostError: The worker stopped: the SQLite file was deleted or
                replaced under it.
        """
        if self.worker is None:
            await asyncio.Event().wait()
        else:
            raise await self.worker.wait_failed()

    # -- starting ------------------------------------------------------------------------

    async def start(
        self,
        workflow: Workflow[Any, R] | str,
        *args: Any,
        id: str | None = None,
        on_conflict: IdConflictPolicy = "use_existing",
        on_reuse: IdReusePolicy = "use_existing",
        execution_timeout: float | timedelta | None = None,
        queue: str | None = None,
        priority: int = 0,
        concurrency_key: str | None = None,
        dedup_key: str | None = None,
        on_dedup: Literal["use_existing", "fail"] = "use_existing",
        start_at: datetime | None = None,
        start_delay: float | timedelta | None = None,
        debounce_key: str | None = None,
        debounce: float | timedelta | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[R]:
        """Start a run, or return the existing one for this workflow id.

        The workflow id is the idempotency key: while a run with this id is live,
        starting again returns its handle (``on_conflict="fail"`` raises instead). Once
        it has ended, ``on_reuse`` decides: ``"use_existing"`` (default: return the
        finished run), ``"allow"`` (start a new run), ``"allow_failed"`` (a new run only
        if the last one did not complete) or ``"fail"``.

        Args:
            workflow: The workflow, or its registered name.
            *args: Its arguments (keyword arguments too, after the options).
            id: The workflow id; a random one by default.
            on_conflict: What a live run with this id means.
            on_reuse: What a finished run with this id means.
            execution_timeout: Limit of the whole run; past it the run ends ``timed_out``.
            queue: The queue (default: the workflow's, else ``"default"``); its
                :class:`duro.Queue` limits apply.
            priority: Higher starts first when the queue is saturated.
            concurrency_key: Runs with the same key share the queue's ``key_concurrency``.
            dedup_key: At most one live run with this key in the queue: another start
                returns it (``on_dedup="use_existing"``) or fails (``"fail"``).
            start_at: Do not start before this time (timezone-aware datetime).
            start_delay: Do not start before this delay has passed.
            debounce_key: Starts with the same key collapse into one run that starts
                after ``debounce`` seconds without a new start, with the last arguments.
            debounce: The quiet period of ``debounce_key``.

        Raises:
            WorkflowNotFoundError: ``workflow`` is a name no imported workflow has.
            WorkflowArgumentsError: The arguments do not fit the workflow's signature, or
                one would not come back as the type the workflow's hints ask for.
            SerializationError: An argument cannot be stored as JSON (or is NaN or
                Infinity).
            InvalidArgumentError: An option is refused: an empty or whitespace-only id,
                one with control characters or over 1,000 characters, a timeout or delay
                that is negative, zero (timeouts) or not finite, an unknown policy name...
                Nothing is stored.
            WorkflowIdTakenError: The id's run is of another workflow (live, or ended
                and ``on_reuse`` does not allow a new run).
            WorkflowAlreadyStartedError: The id policy says fail.
        """
        placement = _placement(self.clock, queue=queue, priority=priority,
                               concurrency_key=concurrency_key, dedup_key=dedup_key,
                               on_dedup=on_dedup, start_at=start_at, start_delay=start_delay,
                               debounce_key=debounce_key, debounce=debounce)
        handle, _ = await self._start(workflow, args, kwargs, id, on_conflict, on_reuse,
                                      execution_timeout, None, placement)
        return handle

    async def _start(
        self, workflow: Workflow[Any, R] | str, args: tuple[Any, ...], kwargs: dict[str, Any],
        workflow_id: str | None, on_conflict: IdConflictPolicy, on_reuse: IdReusePolicy,
        execution_timeout: float | timedelta | None, message: Message | None,
        placement: Placement | None = None,
    ) -> tuple[WorkflowHandle[R], RunRecord]:
        if workflow_id is not None:
            check_id(workflow_id)
        check_choice(on_conflict, "on_conflict", _ON_CONFLICT)
        check_choice(on_reuse, "on_reuse", _ON_REUSE)
        timeout = check_seconds(execution_timeout, "execution_timeout")
        wf = lookup_workflow(workflow) if isinstance(workflow, str) else workflow
        if not isinstance(wf, Workflow):
            raise TypeError(f"expected a @duro.workflow or its name, got {workflow!r}")
        wf.check_arguments(args, kwargs, what=f"workflow {wf.name!r} called")
        payload = wf.encode_input(args, kwargs, what=f"the arguments of workflow {wf.name!r}")
        self._require_open()
        stored = await self.payloads.encode(payload)
        if message is not None and self.payloads.active:
            message = dataclasses.replace(message, data=await self.payloads.encode(message.data))
        workflow_id = workflow_id or str(uuid.uuid4())
        run_id = str(uuid.uuid4())
        now = self.clock.now()
        links = RunLinks(deadline_at=now + timeout) if timeout else None
        placement = dataclasses.replace(placement or Placement(),
                                        queue=(placement.queue if placement else "") or wf.queue)
        worker = self.worker
        local = (placement.immediate and worker is not None
                 and worker.reserve_slot(wf.name, placement.queue))
        adopted = False
        try:
            record, created = await self.store.create_run(
                run_id=run_id, workflow_id=workflow_id, workflow_name=wf.name, input=stored,
                now=now, owner=worker.worker_id if local and worker else None,
                on_conflict=on_conflict, on_reuse=on_reuse, links=links, message=message,
                placement=placement,
            )
            if created and local and worker is not None:
                adopted = True
                worker.adopt(Claim(run_id=record.run_id, workflow_id=workflow_id,
                                   workflow_name=wf.name, epoch=record.epoch, history_len=1,
                                   queue=record.queue), payload, now, links=links)
            elif created and worker is not None:
                worker.wake()
        finally:
            if local and not adopted and worker is not None:
                worker.unreserve_slot()
        if message is not None and worker is not None:
            worker.inbox_hint(record.run_id)
        # record.workflow_id: a deduplicated start returns another run, with its own id.
        handle: WorkflowHandle[R] = WorkflowHandle(self, record.workflow_id, record.run_id,
                                                   result_hint=wf.return_hint)
        return handle, record

    async def signal_with_start(
        self,
        workflow: Workflow[Any, R] | str,
        *args: Any,
        id: str,
        signal: str,
        payload: Any = None,
        on_reuse: IdReusePolicy = "use_existing",
        execution_timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[R]:
        """Signal the live run with this id, starting it first if there is none — in one
        transaction (the pattern for webhooks: the first event creates the run).

        With the default ``on_reuse``, a finished run with this id makes it fail with
        ``RunNotFoundError``; pass ``on_reuse="allow"`` to start a new run then.

        Raises:
            WorkflowIdTakenError: The live run with this id is of another workflow (no
                signal is stored).
            WorkflowArgumentsError, SerializationError, InvalidArgumentError: As
                :meth:`start`; the payload is checked the same way.
        """
        data = encode(payload, what=f"the payload of signal {signal!r}")
        handle, _ = await self._start(workflow, args, kwargs, id, "use_existing", on_reuse,
                                      execution_timeout,
                                      Message(kind=MessageKind.SIGNAL, name=signal, data=data))
        return handle

    async def update_with_start(
        self,
        workflow: Workflow[Any, R] | str,
        *args: Any,
        id: str,
        update: str,
        update_args: tuple[Any, ...] | list[Any] = (),
        update_id: str | None = None,
        on_reuse: IdReusePolicy = "use_existing",
        timeout: float | None = None,
        **kwargs: Any,
    ) -> tuple[WorkflowHandle[R], Any]:
        """Send an update to the live run with this id, starting it first if needed (in
        one transaction), and wait for the update's result.

        Returns:
            The run's handle and the update's result.

        Raises:
            WorkflowIdTakenError: The live run with this id is of another workflow (no
                update is stored).
            WorkflowArgumentsError, SerializationError, InvalidArgumentError: As
                :meth:`start`; the update's arguments are checked the same way.
        """
        update_id = str(uuid.uuid4()) if update_id is None else check_id(update_id, "update id")
        check_seconds(timeout, "timeout")
        data = encode(list(update_args), what=f"the arguments of update {update!r}")
        handle, record = await self._start(
            workflow, args, kwargs, id, "use_existing", on_reuse, None,
            Message.update_request(update, update_id, data))
        result = await handle._wait_update(record.run_id, update, update_id, timeout, Any)
        return handle, result

    def get_handle(self, workflow_id: str, run_id: str | None = None,
                   *, result_type: Any = Any) -> WorkflowHandle[Any]:
        """A handle to an existing run (the latest run of the id unless ``run_id``)."""
        self._require_open()
        return WorkflowHandle(self, workflow_id, run_id, result_hint=result_type)

    async def list(
        self, *, status: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[RunInfo]:
        """Runs, newest first, optionally filtered by status and workflow name.

        Raises:
            InvalidArgumentError: An unknown status, or a negative limit.
        """
        self._require_open()
        if status is not None:
            check_choice(status, "status", _STATUSES)
        check_count(limit, "limit", minimum=0)
        return await self.run_infos(
            await self.store.list_runs(status=status, name=name, limit=limit))

    async def run_infos(self, records: Sequence[RunRecord]) -> builtins.list[RunInfo]:
        """Read models of runs, their results decoded through the codecs."""
        results = await self.payloads.decode_many([r.result for r in records])
        return [RunInfo.from_record(r if result is r.result
                                    else dataclasses.replace(r, result=result))
                for r, result in zip(records, results, strict=True)]

    async def run_info(self, record: RunRecord) -> RunInfo:
        """The read model of one run (see :meth:`run_infos`)."""
        return (await self.run_infos([record]))[0]

    async def queues(self) -> Sequence[QueueStats]:
        """Each queue's depth, running count and limits."""
        self._require_open()
        return await self.store.queue_stats(real_now=time.time())

    async def signal(self, workflow_id: str, name: str, payload: Any = None) -> None:
        """Send a signal to the live run with this id (delivered once, in order)."""
        self._require_open()
        data = encode(payload, what=f"the payload of signal {name!r}")
        data = await self.payloads.encode(data)
        record = await self.store.send_message(workflow_id, MessageKind.SIGNAL, name, data,
                                               now=self.clock.now())
        if self.worker is not None:
            self.worker.inbox_hint(record.run_id)

    async def retry(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Re-run a failed (or timed-out) run from where it failed, reusing every result
        recorded before that point; returns the new run's handle (same workflow id).

        If a step's failure failed the run, that step runs again (fresh attempts);
        otherwise the workflow code resumes after the last recorded event.
        """
        self._require_open()
        record = await self._existing(workflow_id)
        if record.status.value not in ("failed", "timed_out"):
            raise DuroError(f"only failed or timed-out runs can be retried; run "
                            f"{record.run_id} is {record.status.value}")
        events = await self.store.load_history(record.run_id)
        ends = (EventKind.RUN_FAILED, EventKind.RUN_TIMED_OUT)
        upto = next((e.seq for e in events if e.kind in ends), len(events))
        drop: Sequence[int] = ()
        info = RunInfo.from_record(record)
        if info.error is not None and info.error.type.endswith("StepFailedError"):
            failed = [e for e in events if e.kind == EventKind.STEP_FAILED and e.seq < upto]
            if failed:
                upto, drop = failed[-1].seq, [failed[-1].op or 0]
        return await self._copy(record, upto, drop, record.workflow_id, close=False,
                                reason="retried")

    async def reset(self, workflow_id: str, *, to: int) -> WorkflowHandle[Any]:
        """Start a new run (same workflow id) that reuses the history's first ``to``
        events and continues live from there; a live run is terminated first.

        Steps recorded before that point are not executed again.
        """
        self._require_open()
        record = await self._existing(workflow_id)
        if not 1 <= to <= record.history_len:
            raise InvalidArgumentError(f"reset point must be between 1 and {record.history_len}")
        return await self._copy(record, to, [], record.workflow_id, close=True,
                                reason=f"reset to event {to}")

    async def fork(self, workflow_id: str, *, to: int | None = None,
                   new_id: str | None = None) -> WorkflowHandle[Any]:
        """Start a new run under a new workflow id from the first ``to`` events of this
        run's history (all but its end by default); the original is left alone."""
        self._require_open()
        record = await self._existing(workflow_id)
        events = await self.store.load_history(record.run_id)
        if to is None:
            to = next((e.seq for e in events if e.kind.startswith("run_")
                       and e.kind != EventKind.RUN_STARTED), len(events))
        if not 1 <= to <= len(events):
            raise InvalidArgumentError(f"fork point must be between 1 and {len(events)}")
        new_id = (f"{record.workflow_id}-fork-{uuid.uuid4().hex[:8]}" if new_id is None
                  else check_id(new_id))
        return await self._copy(record, to, [], new_id, close=False, reason="")

    async def _existing(self, workflow_id: str) -> RunRecord:
        record = await self.store.get_run(workflow_id)
        if record is None:
            raise RunNotFoundError(f"no run with workflow id {workflow_id!r}")
        return record

    async def _copy(self, record: RunRecord, upto: int, drop: Sequence[int], workflow_id: str, *,
                    close: bool, reason: str) -> WorkflowHandle[Any]:
        new = await self.store.copy_run(record.run_id, upto_seq=upto, drop_ops=drop,
                                        new_run_id=str(uuid.uuid4()), workflow_id=workflow_id,
                                        close_source=close, reason=reason,
                                        now=self.clock.now())
        if self.worker is not None:
            if close:
                self.worker.terminated(record.run_id)
            self.worker.wake()
        hint = _return_hint(record.workflow_name)
        return WorkflowHandle(self, workflow_id, new.run_id, result_hint=hint)

    async def cancel(self, workflow_id: str) -> None:
        """Request cancellation of the live run with this id."""
        self._require_open()
        record = await self.store.send_message(workflow_id, MessageKind.CANCEL, None, None,
                                               now=self.clock.now())
        if self.worker is not None:
            self.worker.inbox_hint(record.run_id)

    async def terminate(self, workflow_id: str, *, reason: str = "terminated") -> None:
        """Stop the live run with this id at once: no more workflow code runs."""
        self._require_open()
        record = await self.store.terminate(workflow_id, reason=reason, now=self.clock.now())
        if self.worker is not None:
            self.worker.terminated(record.run_id)

    async def resume(self, workflow_id: str) -> None:
        """Retry a parked run now (workers retry parked runs on their own only when
        the workflow's code changed; use this after repairing data)."""
        self._require_open()
        await self.store.resume_parked(workflow_id, now=self.clock.now())
        if self.worker is not None:
            self.worker.wake()

    async def query(self, workflow_id: str, name: str, *args: Any, run_id: str | None = None,
                    type: Any = Any) -> Any:
        """Ask a run a question answered by its query handler, in this process.

        The answer comes from this process's cached instance of the run when it is
        current, else from a read-only replay of its history: nothing is written and no
        step runs. The workflow's code must be importable here.

        Raises:
            QueryError: No such query handler, or it failed.
            RunNotFoundError: No such run.
        """
        from duro.serde import convert
        from duro.workflow._replayer import replayed

        self._require_open()
        record = await self.store.get_run(workflow_id, run_id)
        if record is not None and record.status.value == "continued_as_new":
            record = await self.store.get_run(workflow_id)  # ask the current run
        if record is None:
            raise RunNotFoundError(f"no run with workflow id {workflow_id!r}")
        wf = lookup_workflow(record.workflow_name)
        inst = (self.worker.instance(record.run_id, history_len=record.history_len)
                if self.worker is not None else None)
        if inst is not None:
            value = inst.query(name, list(args))
        else:
            history = await self.payloads.decode_history(
                await self.store.load_history(record.run_id))
            with replayed(wf, history, run_id=record.run_id,
                          workflow_id=record.workflow_id) as inst:
                if inst.park_error is not None:
                    raise QueryError(f"run {record.run_id} cannot be replayed here: "
                                     f"{inst.park_error}")
                value = inst.query(name, list(args))
        import orjson

        return convert(orjson.loads(encode(value, what=f"the answer to query {name!r}")),
                       type)

    def _close_waiter(self, run_id: str) -> asyncio.Future[Outcome | None] | None:
        if self.worker is None:
            return None
        return self.worker.wait_for_close(run_id)

    def _require_open(self) -> None:
        if not self._open:
            raise DuroError("the engine is not open: use `async with Engine(...)` or "
                            "`await engine.open()`")




def _placement(
    clock: Clock, *, queue: str | None, priority: int, concurrency_key: str | None,
    dedup_key: str | None, on_dedup: str, start_at: datetime | None,
    start_delay: float | timedelta | None, debounce_key: str | None,
    debounce: float | timedelta | None,
) -> Placement:
    """Where and when a new run waits, from :meth:`Engine.start`'s options, checked.

    Raises:
        InvalidArgumentError: An option is refused (see ``Engine.start``).
    """
    if queue is not None:
        check_id(queue, "queue")
    check_count(priority, "priority", minimum=-_PRIORITY - 1, maximum=_PRIORITY)
    check_choice(on_dedup, "on_dedup", _ON_DEDUP)
    when = None
    if start_at is not None:
        if start_delay is not None:
            raise InvalidArgumentError("pass start_at or start_delay, not both")
        if not isinstance(start_at, datetime) or start_at.tzinfo is None:
            raise InvalidArgumentError("start_at must be a timezone-aware datetime (e.g. "
                                       "datetime.now(UTC))")
        when = start_at.timestamp()
    delay = check_seconds(start_delay, "start_delay", zero=True)
    if delay is not None:
        when = clock.now() + delay
    period = check_seconds(debounce, "debounce")
    if (debounce_key is None) != (period is None):
        raise InvalidArgumentError("debounce_key and debounce go together: starts with the "
                                   "same key collapse after a quiet period of debounce "
                                   "seconds")
    return Placement(queue=queue or "", priority=priority, concurrency_key=concurrency_key,
                     dedup_key=dedup_key, on_dedup=on_dedup, debounce_key=debounce_key,
                     debounce=period or 0.0, start_at=when)


def _return_hint(name: str) -> Any:
    try:
        return lookup_workflow(name).return_hint
    except DuroError:
        return Any
