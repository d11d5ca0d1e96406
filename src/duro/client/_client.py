"""The Client: start, inspect and control runs through the store alone."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import orjson

from duro._checks import (
    DEFAULT_NAMESPACE,
    check_choice,
    check_headers,
    check_id,
    check_namespace,
    check_reason,
    check_seconds,
)
from duro._clock import Clock, SystemClock
from duro._history import EventKind, SearchValue, SignalMeta
from duro._ids import new_id
from duro._local import NO_LOCAL_RUNS, NOT_HERE, LocalRuns, Outcome, answer_here
from duro._messages import MessageKind
from duro._queues import Queue
from duro._search import check_search_attributes
from duro.budget._budget import Budget, budgets_of
from duro.client import _start_options as opts
from duro.client._approvals import Approvals
from duro.client._budgets import Budgets
from duro.client._cache import StepCache
from duro.client._handle import WorkflowHandle
from duro.client._listing import Listings
from duro.client._operations import Operations
from duro.client._records import RunInfo, WorkerInfo, decode_error
from duro.client._schedules import Schedules
from duro.client._steps import StepCompletions
from duro.client._tokens import Tokens
from duro.client._url import is_remote
from duro.errors import (
    DuroError,
    ErrorInfo,
    InvalidArgumentError,
    RunNotFoundError,
    UpdateFailedError,
    UpdateRejectedError,
    WorkflowNotFoundError,
)
from duro.interceptors._chain import check_interceptors
from duro.interceptors._client import (
    CancelInput,
    ClientInterceptor,
    QueryInput,
    SignalInput,
    StartInput,
    TerminateInput,
    UpdateInput,
    intercept,
)
from duro.serde import CodecChain, PayloadConverter, decode, encode
from duro.store import (
    Claim,
    IdConflictPolicy,
    IdReusePolicy,
    Message,
    RunLinks,
    RunRecord,
    Store,
    open_store,
)
from duro.store._records import Placement, QueueStats
from duro.store._url import redact
from duro.workflow._api import Workflow, find_workflow, lookup_workflow

__all__ = ["Client"]

R = TypeVar("R")
log = logging.getLogger("duro")

class Client(Listings):
    """Start, inspect and control workflow runs, through the store alone (or through a
    server: ``Client("http://host:8233", token=...)`` is a
    :class:`~duro.client.RemoteClient`, with the same methods over ``duro serve``'s HTTP
    API; docs/http.md, "Remote client").

    Use as ``async with duro.Client("sqlite:///duro.db") as client: ...``. A client
    runs no workflow code: workers (``duro worker``, or an :class:`~duro.Engine` in
    another process) run the runs it starts. It does not need the workflows' code
    either: ``start("billing.charge", ...)`` by name stores the arguments as given
    (only a process that imports the workflow can check them against its signature).
    Queries need the code, here or in a worker.

    A client works in one namespace (docs/namespaces.md): the runs it starts and the
    schedules it creates belong to it, and it sees, signals, lists and controls only
    those of its namespace — a run of another is, to it, as if it did not exist
    (``RunNotFoundError``). :meth:`with_namespace` gives a view of the same client in
    another namespace, without opening anything.

    Args:
        url: The store: ``sqlite:///path/to.db`` (relative), ``sqlite:////abs/path.db``
            or ``postgresql://...``; or a server, ``http(s)://host:port``.
        namespace: The namespace (1 to 64 ASCII letters, digits, ``.``, ``_``, ``-``);
            None sees every namespace (operators' tools), and starts runs in
            ``"default"``.
        store: An open-able store to use instead of opening ``url``.
        clock: Durable time; pass ``duro.testing.ManualClock`` to control it.
        codec: The :class:`duro.serde.CodecChain` payloads are stored through
            (compression, encryption, offload); every process using the store needs a
            chain that can decode them.
        synchronous: SQLite's synchronous pragma (``FULL`` by default).
        interceptors: :class:`duro.interceptors.ClientInterceptor` objects that see
            every start, signal, update, query, cancel and terminate, first to last
            (docs/interceptors.md).
        token: For a server URL: the API token (default ``$DURO_TOKEN``); see
            :class:`~duro.client.RemoteClient` for its other options.
    """

    def __new__(cls, url: str = "sqlite:///duro.db", *args: Any, **kwargs: Any) -> Self:
        # ``Client("http://...")`` is the remote client (a Client too): code written
        # against a client moves between a database and a server unchanged.
        if cls is Client and is_remote(kwargs.get("url", url)):
            from duro.client._remote import RemoteClient

            return super().__new__(RemoteClient)  # type: ignore[return-value]
        return super().__new__(cls)

    _code_only = False
    """Refuse workflow names not imported here (an Engine's client, and its views)."""

    def __init__(
        self,
        url: str = "sqlite:///duro.db",
        *,
        namespace: str | None = DEFAULT_NAMESPACE,
        store: Store | None = None,
        clock: Clock | None = None,
        codec: CodecChain | None = None,
        synchronous: str | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
        token: str | None = None,
    ) -> None:
        if token is not None:
            raise InvalidArgumentError("token= is for a server URL (http://...): a store "
                                       "URL carries its own credentials")
        self.namespace: str | None = (None if namespace is None
                                      else check_namespace(namespace))
        """The namespace this client works in (None: every namespace)."""
        self.url = url
        self.clock = clock or SystemClock()
        self.payloads = PayloadConverter(codec)
        options: dict[str, Any] = {}
        if synchronous is not None:
            options["synchronous"] = synchronous
        self.store: Store = store or open_store(url, **options)
        self.schedules = Schedules(self)
        self.tokens = Tokens(self)
        self.cache = StepCache(self)
        """The durable step cache of this namespace (list, invalidate)."""
        self.approvals = Approvals(self)
        """Human approvals: list, read, approve, reject (``duro.approval()``)."""
        self.steps = StepCompletions(self)
        """Step attempts completed from outside by token (``duro.complete_later()``)."""
        self.budgets = Budgets(self)
        """Shared budgets: their spend per key and window, and their limits."""
        self.operations = Operations(self)
        """Exposed operations started from outside a workflow (docs/rpc.md)."""
        self._interceptors: list[ClientInterceptor] = check_interceptors(interceptors,
                                                                       ClientInterceptor)
        # The client that owns the store (this one, or the one a view was made from):
        # it holds what views share and may change, the link below and whether it is open.
        self._root: Client = self
        self._opened_context: contextvars.Context | None = None
        # The worker of this process, if any (see duro._local): told what this client
        # did, so that it acts at once instead of at its next look at the store.
        self._links: LocalRuns = NO_LOCAL_RUNS
        self._open = False

    @property
    def _local(self) -> LocalRuns:
        return self._root._links

    @_local.setter
    def _local(self, value: LocalRuns) -> None:
        self._root._links = value

    def with_namespace(self, namespace: str | None) -> Client:
        """A view of this client in another namespace: the same opened store, codecs,
        interceptors, clock and worker link, scoped to ``namespace`` (None: every
        namespace). Cheap (nothing is opened: a server makes one per request); open
        while this client is, and closing it closes nothing.

        Raises:
            InvalidArgumentError: ``namespace`` is not a valid name.
        """
        checked = None if namespace is None else check_namespace(namespace)
        view = object.__new__(Client)
        view.namespace = checked
        view.url, view.clock, view.payloads = self.url, self.clock, self.payloads
        view.store, view._interceptors = self.store, self._interceptors
        view._root = self._root
        view._links = NO_LOCAL_RUNS  # unused: a view's link is its root's
        view._open = False  # likewise
        view._opened_context = None  # likewise
        view._code_only = self._root._code_only
        view.schedules = Schedules(view)
        view.tokens = Tokens(view)
        view.cache = StepCache(view)
        view.approvals = Approvals(view)
        view.steps = StepCompletions(view)
        view.budgets = Budgets(view)
        view.operations = Operations(view)
        return view

    def __repr__(self) -> str:
        # Reprs end up in logs: no password.
        return (f"<duro.{type(self).__name__} {redact(self.url)} "
                f"namespace={self.namespace!r}>")

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the store (a view: nothing, it is open while its client is)."""
        if self._open or self._root is not self:
            return
        await self.store.open()
        self._open = True
        # What a query answered here by replay sees (without a worker: the worker's
        # context otherwise), whoever asks later: the process's as the client opened.
        self._opened_context = contextvars.copy_context()

    async def close(self) -> None:
        """Close the store (a view: nothing, the store is its client's)."""
        if not self._open or self._root is not self:
            return
        self._open = False
        await self.store.close()

    def _workflow(self, workflow: Workflow[Any, R] | str) -> Workflow[Any, R] | opts.Named:
        """The workflow to start: the registered one, or one known by name only."""
        if isinstance(workflow, Workflow):
            return workflow
        if not isinstance(workflow, str):
            raise TypeError(f"expected a @duro.workflow or its name, got {workflow!r}")
        registered = find_workflow(workflow)
        if registered is not None:
            return registered
        if self._code_only:
            lookup_workflow(workflow)  # raises WorkflowNotFoundError, naming those known
        check_id(workflow, "workflow name")
        return opts.Named(workflow)

    # -- starting ------------------------------------------------------------------------

    async def start(
        self,
        workflow: Workflow[Any, R] | str,
        *args: Any,
        id: str | None = None,
        on_conflict: IdConflictPolicy = "use_existing",
        on_reuse: IdReusePolicy = "use_existing",
        execution_timeout: float | timedelta | None = None,
        queue: str | Queue | None = None,
        priority: int = 0,
        concurrency_key: str | None = None,
        dedup_key: str | None = None,
        on_dedup: Literal["use_existing", "fail"] = "use_existing",
        start_at: datetime | None = None,
        start_delay: float | timedelta | None = None,
        debounce_key: str | None = None,
        debounce: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
        budget: Budget | Sequence[Budget] | None = None,
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
            queue: The queue, by name or :class:`duro.Queue` (default: the workflow's,
                else ``"default"``); its
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
            headers: Context carried with the run (trace ids, tenant, principal):
                strings by string, seen by the run (``duro.info().headers``), its steps
                (``duro.step_info().headers``, wherever they run) and its children, and
                by interceptors.
            search_attributes: Indexed values to find the run by (``list``,
                ``list_page`` and ``iter_runs`` filter on them): keys are identifiers of
                at most 64 characters, values a str, int, float or bool. Recorded in the
                ``run_started`` event; a start that returns an existing run leaves that
                run's alone. Stored as plain text (codecs do not encrypt them).
            budget: The run's budgets (a :class:`duro.Budget` or a list; default: the
                workflow's ``@duro.workflow(budget=)``), recorded in its
                ``run_started`` event and checked before each attempt of its
                ``budgeted`` steps (docs/agents.md, "Budgets").

        Raises:
            WorkflowNotFoundError: ``workflow`` is a name no imported workflow has.
            WorkflowArgumentsError: The arguments do not fit the workflow's signature, or
                one would not come back as the type the workflow's hints ask for.
            SerializationError: An argument cannot be stored as JSON (or is NaN or
                Infinity).
            InvalidArgumentError: An option is refused: an empty or whitespace-only id,
                one with control characters or over 1,000 characters, a timeout or delay
                that is negative, zero (timeouts) or not finite, an unknown policy name, a
                search attribute (the message names its key)... Nothing is stored.
            WorkflowIdTakenError: The id's run is of another workflow (live, or ended
                and ``on_reuse`` does not allow a new run).
            WorkflowAlreadyStartedError: The id policy says fail, or the id belongs to a
                run of another namespace (live, or ended and ``on_reuse`` is not
                ``"allow"``: ids are unique across namespaces); the message then says
                only that the id is taken.
        """
        placement = opts.placement(self.clock, queue=queue, priority=priority,
                               concurrency_key=concurrency_key, dedup_key=dedup_key,
                               on_dedup=on_dedup, start_at=start_at, start_delay=start_delay,
                               debounce_key=debounce_key, debounce=debounce)
        return await self._start(workflow, args, kwargs, id, on_conflict, on_reuse,
                                 execution_timeout, None, placement, headers,
                                 search_attributes, budgets_of(budget))

    async def _start(
        self, workflow: Workflow[Any, R] | str, args: tuple[Any, ...], kwargs: dict[str, Any],
        workflow_id: str | None, on_conflict: IdConflictPolicy, on_reuse: IdReusePolicy,
        execution_timeout: float | timedelta | None, message: Message | None,
        placement: Placement | None = None, headers: Mapping[str, str] | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
        budgets: tuple[Budget, ...] = (),
    ) -> WorkflowHandle[R]:
        check_choice(on_conflict, "on_conflict", opts.ON_CONFLICT)
        check_choice(on_reuse, "on_reuse", opts.ON_REUSE)
        timeout = opts.bounded(check_seconds(execution_timeout, "execution_timeout"),
                               "execution_timeout")
        wf = self._workflow(workflow)

        given = check_headers(headers)

        async def create(call: StartInput) -> WorkflowHandle[Any]:
            chosen = wf if call.workflow == wf.name else self._workflow(call.workflow)
            # Checked again only if an interceptor put others there.
            checked = given if call.headers is given else check_headers(call.headers)
            return await self._create(chosen, call.args, dict(call.kwargs), call.workflow_id,
                                      on_conflict, on_reuse, timeout,
                                      opts.with_headers(message, checked), placement, checked,
                                      call.search_attributes, budgets)

        call = StartInput(workflow=wf.name, args=args, kwargs=kwargs, workflow_id=workflow_id,
                          signal=message.name if message and message.kind == "signal"
                          else None,
                          update=message.name if message and message.kind != "signal"
                          else None, headers=given, search_attributes=search_attributes)
        handle: WorkflowHandle[R] = await intercept(self._interceptors, "start", call, create)
        return handle

    async def _create(
        self, wf: Workflow[Any, R] | opts.Named, args: tuple[Any, ...], kwargs: dict[str, Any],
        workflow_id: str | None, on_conflict: IdConflictPolicy, on_reuse: IdReusePolicy,
        timeout: float | None, message: Message | None, placement: Placement | None,
        headers: dict[str, str] | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
        budgets: tuple[Budget, ...] = (),
    ) -> WorkflowHandle[R]:
        if workflow_id is not None:
            check_id(workflow_id)
        attributes = check_search_attributes(search_attributes)
        wf.check_arguments(args, kwargs, what=f"workflow {wf.name!r} called")
        payload = wf.encode_input(args, kwargs, what=f"the arguments of workflow {wf.name!r}")
        self._require_open()
        stored = await self.payloads.encode(payload)
        if message is not None and self.payloads.active:
            message = dataclasses.replace(message, data=await self.payloads.encode(message.data))
        workflow_id = workflow_id or new_id()
        run_id = new_id()
        now = self.clock.now()
        links = (RunLinks(deadline_at=now + timeout if timeout else None, headers=headers,
                          budgets=tuple(b.to_json() for b in budgets))
                 if timeout or headers or budgets else None)
        placement = dataclasses.replace(placement or Placement(),
                                        queue=(placement.queue if placement else "") or wf.queue)
        local = self._local
        # A run that must wait (delayed, debounced) goes through a claim when it is due.
        with (local.local_start(wf.name, placement.queue) if placement.immediate
              else NOT_HERE) as slot:
            record, created = await self.store.create_run(
                run_id=run_id, workflow_id=workflow_id, workflow_name=wf.name, input=stored,
                now=now, owner=local.worker_id if slot.local else None,
                on_conflict=on_conflict, on_reuse=on_reuse, links=links, message=message,
                placement=placement, search_attributes=attributes, namespace=self.namespace,
            )
            if created and slot.local:
                slot.adopt(Claim(run_id=record.run_id, workflow_id=workflow_id,
                                 workflow_name=wf.name, epoch=record.epoch, history_len=1,
                                 queue=record.queue, namespace=record.namespace),
                           payload, now, links=links)
            elif created:
                local.wake()
        if message is not None:
            local.inbox_hint(record.run_id)
        # record.workflow_id: a deduplicated start returns another run, with its own id.
        return WorkflowHandle(self, record.workflow_id, record.run_id,
                              result_hint=wf.return_hint, start_status=record.status)

    async def signal_with_start(
        self,
        workflow: Workflow[Any, R] | str,
        *args: Any,
        id: str,
        signal: str,
        payload: Any = None,
        signal_id: str | None = None,
        on_reuse: IdReusePolicy = "use_existing",
        execution_timeout: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[R]:
        """Signal the live run with this id, starting it first if there is none — in one
        transaction (the pattern for webhooks: the first event creates the run; its
        ``search_attributes`` are as :meth:`start` takes them).

        With the default ``on_reuse``, a finished run with this id makes it fail with
        ``RunNotFoundError``; pass ``on_reuse="allow"`` to start a new run then.

        ``signal_id`` is the delivery's id (a webhook provider's delivery id): as in
        :meth:`signal`, a delivery the workflow id's chain of runs took already is a
        no-op that succeeds, starting nothing (even where ``on_reuse`` would start a new
        run after a finished one), and returns the chain's latest run.

        Raises:
            WorkflowIdTakenError: The live run with this id is of another workflow (no
                signal is stored).
            WorkflowArgumentsError, SerializationError, InvalidArgumentError: As
                :meth:`start`; the payload and ``signal_id`` are checked the same way.
        """
        if signal_id is not None:
            check_id(signal_id, "signal id")
        data = encode(payload, what=f"the payload of signal {signal!r}")
        message = Message(kind=MessageKind.SIGNAL, name=signal, data=data,
                          meta=SignalMeta(id=signal_id).encode(), signal_id=signal_id)
        return await self._start(workflow, args, kwargs, id, "use_existing", on_reuse,
                                 execution_timeout, message,
                                 headers=headers, search_attributes=search_attributes)

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
        headers: Mapping[str, str] | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
        **kwargs: Any,
    ) -> tuple[WorkflowHandle[R], Any]:
        """Send an update to the live run with this id, starting it first if needed (in
        one transaction; with ``search_attributes`` as :meth:`start` takes them), and
        wait for the update's result.

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
        handle: WorkflowHandle[R] = await self._start(
            workflow, args, kwargs, id, "use_existing", on_reuse, None,
            Message.update_request(update, update_id, data), headers=headers,
            search_attributes=search_attributes)
        run_id = handle.run_id or (await handle.describe()).run_id
        result = await self._wait_update(handle.workflow_id, run_id, update, update_id,
                                         timeout, Any)
        return handle, result

    def get_handle(self, workflow_id: str, run_id: str | None = None,
                   *, result_type: Any = Any) -> WorkflowHandle[Any]:
        """A handle to an existing run (the latest run of the id unless ``run_id``)."""
        self._require_open()
        return WorkflowHandle(self, workflow_id, run_id, result_hint=result_type)

    async def queues(self) -> Sequence[QueueStats]:
        """Each queue's depth and running count (of this client's namespace), and its
        limits and recent starts (deployment-wide, as queue limits are)."""
        self._require_open()
        return await self.store.queue_stats(real_now=time.time(), namespace=self.namespace)

    async def workers(self) -> Sequence[WorkerInfo]:
        """The workers registered in the store, oldest first: where each runs, whether
        its lease is live, how many runs it holds."""
        self._require_open()
        records = await self.store.list_workers()
        now = time.time()  # leases are wall-clock times (workers are other processes)
        return [WorkerInfo.from_record(r, now=now) for r in records]

    async def signal(self, workflow_id: str, name: str, payload: Any = None, *,
                     id: str | None = None,
                     headers: Mapping[str, str] | None = None) -> None:
        """Send a signal to the live run with this id (delivered once, in order).

        Args:
            workflow_id: The run's workflow id.
            name: The signal's name.
            payload: Its payload (JSON-serializable).
            id: The delivery's id (e.g. a webhook provider's delivery id): the signal
                is recorded at most once per id in the workflow id's chain of runs (the
                run, the runs it continued as new into, and those before it since its
                fresh start). Sending an id the chain took already is a no-op that
                succeeds, even once the run has ended; concurrent sends of one id record
                one signal. A fresh start of the workflow id begins a new chain.
            headers: Seen by the worker's ``handle_signal`` interceptors.

        Raises:
            RunNotFoundError: No live run with this id (and, with ``id``, none of its
                chain took that id).
            SerializationError: The payload cannot be stored as JSON.
            InvalidArgumentError: An empty ``id``, or one with control characters or
                over 1,000 characters; bad headers (nothing is sent).
        """
        self._require_open()
        await intercept(self._interceptors, "signal",
                        SignalInput(workflow_id=workflow_id, name=name, payload=payload,
                                    headers=check_headers(headers), signal_id=id),
                        self._signal)

    async def _signal(self, call: SignalInput) -> None:
        signal_id = None if call.signal_id is None else check_id(call.signal_id, "signal id")
        data = encode(call.payload, what=f"the payload of signal {call.name!r}")
        meta = SignalMeta(headers=check_headers(call.headers), id=signal_id).encode()
        data = await self.payloads.encode(data)
        record = await self.store.send_message(call.workflow_id, MessageKind.SIGNAL,
                                               call.name, data, now=self.clock.now(),
                                               meta=meta, signal_id=signal_id,
                                               namespace=self.namespace)
        self._local.inbox_hint(record.run_id)

    async def update(self, workflow_id: str, name: str, *args: Any, id: str | None = None,
                     timeout: float | None = None, type: Any = Any,
                     headers: Mapping[str, str] | None = None) -> Any:
        """Send an update (request/response) to the live run with this id and wait for
        the handler's result.

        Args:
            workflow_id: The run's workflow id.
            name: The update handler's name.
            *args: Its arguments.
            id: The update id: sending the same id again returns the same outcome.
            timeout: Seconds to wait for the outcome.
            type: Convert the result to this type.
            headers: Seen by the worker's ``handle_update`` interceptors.

        Raises:
            UpdateRejectedError: The validator rejected it (nothing was recorded).
            UpdateFailedError: The handler raised.
            TimeoutError: No outcome within ``timeout``.
            InvalidArgumentError: An empty id, or one with control characters or over
                1,000 characters (nothing is sent).
        """
        self._require_open()

        async def send(call: UpdateInput) -> Any:
            update_id = (str(uuid.uuid4()) if call.update_id is None
                         else check_id(call.update_id, "update id"))
            check_seconds(call.timeout, "timeout")
            data = encode(list(call.args), what=f"the arguments of update {call.name!r}")
            data = await self.payloads.encode(data)
            record, _ = await self.store.request_update(
                call.workflow_id, Message.update_request(call.name, update_id, data,
                                                         check_headers(call.headers)),
                now=self.clock.now(), namespace=self.namespace)
            self._local.inbox_hint(record.run_id)
            return await self._wait_update(call.workflow_id, record.run_id, call.name,
                                           update_id, call.timeout, type)

        return await intercept(self._interceptors, "update",
                               UpdateInput(workflow_id=workflow_id, name=name, args=args,
                                           update_id=id, timeout=timeout,
                                           headers=check_headers(headers)), send)

    async def _wait_update(self, workflow_id: str, run_id: str, name: str, update_id: str,
                           timeout: float | None, hint: Any) -> Any:
        store = self.store
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.002
        ended: str | None = None  # a run seen ended: its outcome is read once more
        while True:
            outcome = await store.get_update(run_id, update_id)
            status = outcome.status if outcome is not None else "requested"
            if outcome is not None and status == "completed":
                result = await self.payloads.decode(outcome.result)
                return decode(result, hint, what=f"result of update {name!r}")
            if outcome is not None and status in ("rejected", "failed"):
                cause = decode_error(outcome.error) or ErrorInfo(type="Error", message="")
                if status == "rejected":
                    raise UpdateRejectedError(f"update {name!r} was rejected: {cause}")
                raise UpdateFailedError(f"update {name!r} failed: {cause}", cause=cause)
            run = await store.get_run(workflow_id, run_id, namespace=self.namespace)
            if run is not None and run.status.is_terminal:
                if ended != run_id:  # its end may have settled the update: look again
                    ended = run_id
                    continue
                if outcome is None:
                    # Continued as new before taking the update: it went with the
                    # messages to the next run (its row too), maybe further on since.
                    found = await store.find_update(workflow_id, update_id,
                                                    namespace=self.namespace)
                    if found is not None and found[0] != run_id:
                        run_id = found[0]
                        continue
                raise UpdateRejectedError(
                    f"update {name!r} was not handled: the run ended ({run.status.value})")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"update {name!r} had no outcome within {timeout}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def retry(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Re-run a failed (or timed-out) run from where it failed, or resume a cancelled
        run from where it was cancelled, reusing every result recorded before that
        point; returns the new run's handle (same workflow id).

        If a step's failure failed the run, that step runs again (fresh attempts);
        otherwise the workflow code resumes after the last recorded event. A cancelled
        run resumes from just before its (first) cancel request, as if it had never
        come: what its code did after it (cleanup steps) is not part of the new run,
        and neither are messages recorded after it.

        Raises:
            RunNotFoundError: No run with this workflow id.
            DuroError: Its latest run did not fail, time out or get cancelled.
        """
        self._require_open()
        record = await self._existing(workflow_id)
        if record.status.value not in ("failed", "timed_out", "cancelled"):
            raise DuroError(f"only failed, timed-out or cancelled runs can be retried; run "
                            f"{record.run_id} is {record.status.value}")
        events = await self.store.load_history(record.run_id)
        if record.status.value == "cancelled":
            ends = (EventKind.CANCEL_REQUESTED, EventKind.RUN_CANCELLED)
            upto = next(e.seq for e in events if e.kind in ends)
            return await self._copy(record, upto, (), record.workflow_id, close=False,
                                    reason="resumed after its cancellation")
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
        record = await self.store.get_run(workflow_id, namespace=self.namespace)
        if record is None:
            raise RunNotFoundError(f"no run with workflow id {workflow_id!r}")
        return record

    async def _copy(self, record: RunRecord, upto: int, drop: Sequence[int], workflow_id: str, *,
                    close: bool, reason: str) -> WorkflowHandle[Any]:
        new = await self.store.copy_run(record.run_id, upto_seq=upto, drop_ops=drop,
                                        new_run_id=new_id(), workflow_id=workflow_id,
                                        close_source=close, reason=reason,
                                        now=self.clock.now(), namespace=self.namespace)
        if close:
            self._local.terminated(record.run_id)
        self._local.wake()
        hint = _return_hint(record.workflow_name)
        return WorkflowHandle(self, workflow_id, new.run_id, result_hint=hint)

    async def cancel(self, workflow_id: str) -> None:
        """Request cancellation of the live run with this id."""
        self._require_open()
        await intercept(self._interceptors, "cancel", CancelInput(workflow_id=workflow_id),
                        self._cancel)

    async def _cancel(self, call: CancelInput) -> None:
        record = await self.store.send_message(call.workflow_id, MessageKind.CANCEL, None,
                                               None, now=self.clock.now(),
                                               namespace=self.namespace)
        self._local.inbox_hint(record.run_id)

    async def terminate(self, workflow_id: str, *, reason: str = "terminated") -> None:
        """Stop the live run with this id at once: no more workflow code runs.

        Raises:
            RunNotFoundError: No live run with this id.
            InvalidArgumentError: ``reason`` is not text of at most 4,096 characters
                without NUL (nothing is changed).
        """
        self._require_open()
        await intercept(self._interceptors, "terminate",
                        TerminateInput(workflow_id=workflow_id, reason=check_reason(reason)),
                        self._terminate)

    async def _terminate(self, call: TerminateInput) -> None:
        record = await self.store.terminate(call.workflow_id, reason=call.reason,
                                            now=self.clock.now(), namespace=self.namespace)
        self._local.terminated(record.run_id)

    async def resume(self, workflow_id: str) -> None:
        """Retry a parked run now (workers retry parked runs on their own only when
        the workflow's code changed; use this after repairing data), or resume a
        cancelled run from where it was cancelled (:meth:`retry`: a new run of the same
        workflow id, which ``get_handle(workflow_id)`` then reaches).

        Raises:
            RunNotFoundError: The workflow id's latest run is neither parked nor
                cancelled.
        """
        self._require_open()
        try:
            await self.store.resume_parked(workflow_id, now=self.clock.now(),
                                           namespace=self.namespace)
        except RunNotFoundError:
            latest = await self.store.get_run(workflow_id, namespace=self.namespace)
            if latest is None or latest.status.value != "cancelled":
                raise
            await self.retry(workflow_id)
            return
        self._local.wake()

    async def query(self, workflow_id: str, name: str, *args: Any, run_id: str | None = None,
                    type: Any = Any, timeout: float | None = None,
                    headers: Mapping[str, str] | None = None) -> Any:
        """Ask a run a question answered by its query handler; nothing is recorded and
        no step runs.

        Where the workflow's code is importable here, the answer comes from this
        process: its worker's instance of the run when it is current, else a read-only
        replay of the run's history. Where it is not (a client that only has the
        store), the question goes through the store to a worker that has the code,
        which answers it the same way.

        Args:
            workflow_id: The run's workflow id (its current run after continue-as-new).
            name: The query handler's name.
            *args: Its arguments.
            run_id: That exact run.
            type: The type the answer is converted to.
            timeout: Seconds to wait for a worker's answer through the store (default
                10); unused when this process has the code.
            headers: Seen by the worker's ``handle_query`` interceptors.

        Raises:
            QueryError: No such query handler, or it failed.
            QueryTimeoutError: Through the store: no worker answered in time.
            RunNotFoundError: No such run.
        """
        self._require_open()
        wait = check_seconds(timeout, "timeout")

        async def ask(call: QueryInput) -> Any:
            return await self._query(call.workflow_id, call.name, *call.args,
                                     run_id=call.run_id, type=type, timeout=wait,
                                     headers=check_headers(call.headers))

        return await intercept(self._interceptors, "query",
                               QueryInput(workflow_id=workflow_id, run_id=run_id, name=name,
                                          args=args, headers=check_headers(headers)), ask)

    async def _query(self, workflow_id: str, name: str, *args: Any, run_id: str | None,
                     type: Any, timeout: float | None,
                     headers: dict[str, str] | None = None) -> Any:
        from duro.client._query import DEFAULT_QUERY_TIMEOUT, ask_workers
        from duro.serde import convert

        record = await self.store.get_run(workflow_id, run_id, namespace=self.namespace)
        if record is not None and record.status.value == "continued_as_new":
            # Ask the current run.
            record = await self.store.get_run(workflow_id, namespace=self.namespace)
        if record is None:
            raise RunNotFoundError(f"no run with workflow id {workflow_id!r}")
        try:
            wf = lookup_workflow(record.workflow_name)
        except WorkflowNotFoundError:
            raw = await ask_workers(self, record, name, list(args),
                                    timeout or DEFAULT_QUERY_TIMEOUT,
                                    orjson.dumps(headers) if headers else None)
            return convert(orjson.loads(raw), type)
        value = await answer_here(self._local, self.store, self.payloads, record, wf, name,
                                  list(args), headers, self._root._opened_context)
        return convert(orjson.loads(encode(value, what=f"the answer to query {name!r}")),
                       type)

    def _close_waiter(self, run_id: str) -> asyncio.Future[Outcome | None] | None:
        return self._local.wait_for_close(run_id)

    def _stream_waiter(self, run_id: str) -> asyncio.Future[None] | None:
        return self._local.stream_waiter(run_id)

    def _require_open(self) -> None:
        if not self._root._open:
            name = type(self).__name__
            raise DuroError(f"the {name.lower()} is not open: use `async with {name}(...)` "
                            f"or `await {name.lower()}.open()`")


def _return_hint(name: str) -> Any:
    try:
        return lookup_workflow(name).return_hint
    except DuroError:
        return Any
