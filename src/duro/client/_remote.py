"""The remote client: ``duro.Client("http://host:8233", token=...)``, the client API
through ``duro serve``'s HTTP API instead of the database.

``Client(url)`` with an ``http://`` or ``https://`` URL makes a :class:`RemoteClient`
(``Client.__new__``), a :class:`~duro.Client` whose every public method goes over HTTP
with the same signature, checks and errors as on the store, or raises
:class:`~duro.errors.LocalOnlyError` where the server has no route for it (a unit test
walks the methods). Arguments are checked here as the embedded client checks them, so a
refused call sends nothing.

Payloads travel as plain JSON: the server stores them through its own codec chain.
End-to-end encryption through the server (a codec chain here that the server cannot
read) is not supported yet; a ``codec`` given here is refused rather than ignored.
"""

from __future__ import annotations

import builtins
import functools
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import orjson

from duro._checks import (
    DEFAULT_NAMESPACE,
    check_choice,
    check_count,
    check_headers,
    check_id,
    check_reason,
    check_seconds,
)
from duro._clock import SystemClock
from duro._history import EventKind, SearchValue
from duro._ids import new_id
from duro._local import NO_LOCAL_RUNS
from duro._queues import Queue
from duro._search import RunFilter, check_search_attributes, decode_cursor
from duro._stats import Stats
from duro.budget._budget import Budget, budgets_of
from duro.client import _start_options as opts
from duro.client._client import Client, _return_hint
from duro.client._handle import WorkflowHandle
from duro.client._http import Transport, patiently, segment
from duro.client._listing import MAX_PAGE_SIZE, stats_window
from duro.client._records import RunInfo, RunPage, WorkerInfo, queue_from_json
from duro.client._remote_approvals import RemoteApprovals
from duro.client._remote_handle import (
    RemoteBudgets,
    RemoteCache,
    RemoteHandle,
    RemoteSchedules,
    RemoteTokens,
)
from duro.client._remote_operations import RemoteOperations
from duro.client._steps import RemoteStepCompletions
from duro.errors import (
    InvalidArgumentError,
    LocalOnlyError,
    RunNotFoundError,
    ServerUnavailableError,
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
from duro.serde import CodecChain, PayloadConverter, convert, encode
from duro.store import IdConflictPolicy, IdReusePolicy, RunRecord, RunStatus, Store
from duro.store._records import QueueStats
from duro.store._url import redact
from duro.workflow._api import Workflow

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_TIMEOUT", "RemoteClient"]

R = TypeVar("R")

DEFAULT_TIMEOUT = 30.0
"""Seconds one request may take by default (long polls add their own wait to it)."""
_LONGEST_WAIT = 60.0
"""Seconds the server waits at most in one request (``MAX_WAIT`` of ``duro serve``)."""
_ANSWER_GRACE = 1.0
"""Seconds after a bounded wait's deadline its last request may still be answered."""
_DEFAULT_QUERY_TIMEOUT = 10.0


def _json(data: bytes) -> Any:
    """An encoded payload as the JSON value the request body carries."""
    return orjson.Fragment(data)


def _seconds(value: float | timedelta | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


class RemoteClient(Client):
    """The client API through ``duro serve`` (docs/http.md, "Remote client").

    Made by ``duro.Client("http://host:8233", token=...)``; use it as any client:
    ``async with duro.Client(url) as client: ...`` opens one keep-alive connection pool.

    Args:
        url: The server's base URL (``http://host:8233``; a path prefix is kept, for a
            server mounted under one).
        token: An API token (``duro token create``), sent as ``Authorization: Bearer``;
            default ``$DURO_TOKEN``.
        timeout: Seconds one request may take (waits for a result or an update add the
            time they wait).
        codec: Must be None: the server encodes payloads with its own chain.
        interceptors: Client interceptors, called as by an embedded client.
        http: An ``httpx.AsyncClient`` to send through (its transport, proxies,
            certificates); it stays open when this client closes.

    Raises:
        InvalidArgumentError: A codec, or a timeout that is not a positive number.
    """

    def __init__(self, url: str, *, token: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, codec: CodecChain | None = None,
                 interceptors: Sequence[ClientInterceptor] = (),
                 http: httpx.AsyncClient | None = None,
                 namespace: str | None = DEFAULT_NAMESPACE) -> None:
        if namespace != DEFAULT_NAMESPACE:
            raise InvalidArgumentError(
                "through a server, a client works in its API token's namespace: give it a "
                "token of that namespace (duro token create --namespace) instead of "
                "namespace=")
        if codec is not None:
            raise InvalidArgumentError(
                "a remote client sends payloads as plain JSON and the server encodes them "
                "with its own codec chain: end-to-end codecs through the server are not "
                "supported yet (give the chain to `duro serve --codec`)")
        wait = check_seconds(timeout, "timeout")
        assert wait is not None
        self.namespace = None
        """Not known here: the server acts in the API token's namespace."""
        self.url = url
        self.clock = SystemClock()
        self.payloads = PayloadConverter(None)
        self.schedules = RemoteSchedules(self)
        self.tokens = RemoteTokens(self)
        self.cache = RemoteCache(self)
        self.approvals = RemoteApprovals(self)
        self.steps = RemoteStepCompletions(self)
        self.budgets = RemoteBudgets(self)
        self.operations = RemoteOperations(self)
        self._interceptors = check_interceptors(interceptors, ClientInterceptor)
        self._open = False
        self._root = self
        self._links = NO_LOCAL_RUNS
        self.transport = Transport(url, token=token or os.environ.get("DURO_TOKEN") or None,
                                   timeout=wait, http=http)

    def __repr__(self) -> str:
        return f"<duro.{type(self).__name__} {redact(self.url)}>"

    def with_namespace(self, namespace: str | None) -> NoReturn:
        """Not through a server: a request acts in its API token's namespace (use a
        client with a token of that namespace)."""
        raise LocalOnlyError("through a server, a client works in its API token's "
                             "namespace: use a client with a token of that namespace")

    @property
    def store(self) -> Store:
        """Not here: a remote client has no store."""
        raise LocalOnlyError("a remote client has no store: it acts through the server")

    @store.setter
    def store(self, value: Store) -> None:
        raise LocalOnlyError("a remote client has no store")

    async def open(self) -> None:
        """Open the connection pool (no request is made: a server that is down is
        reported by the first call)."""
        if self._open:
            return
        await self.transport.open()
        self._open = True

    async def close(self) -> None:
        """Close the connection pool."""
        if not self._open:
            return
        self._open = False
        await self.transport.close()

    async def call(self, method: str, path: str, **options: Any) -> tuple[int, Any]:
        """One request to the server (see :meth:`Transport.call`), once open."""
        self._require_open()
        return await self.transport.call(method, path, **options)

    def _runs(self, workflow_id: str, *rest: str) -> str:
        return "/v1/runs/" + "/".join([segment(workflow_id, "workflow id"), *rest])

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
        """Start a run through the server: :meth:`duro.Client.start` (the same options,
        checks and errors). Without ``id``, the id is made here, so that a start whose
        answer was lost can be sent again and is the same start."""
        placement = opts.placement(self.clock, queue=queue, priority=priority,
                               concurrency_key=concurrency_key, dedup_key=dedup_key,
                               on_dedup=on_dedup, start_at=start_at, start_delay=start_delay,
                               debounce_key=debounce_key, debounce=debounce)
        options: dict[str, Any] = {
            "on_conflict": on_conflict, "on_reuse": on_reuse,
            "execution_timeout": _seconds(execution_timeout), "queue": placement.queue or None,
            "priority": priority, "concurrency_key": concurrency_key, "dedup_key": dedup_key,
            "on_dedup": on_dedup, "start_at": None if start_at is None else start_at.timestamp(),
            # The delay, not a time: the server's clock decides when it has passed.
            "start_delay": _seconds(start_delay), "debounce_key": debounce_key,
            "debounce": placement.debounce or None,
            "budget": [b.to_json() for b in budgets_of(budget)] or None}
        defaults = {"on_conflict": "use_existing", "on_reuse": "use_existing",
                    "priority": 0, "on_dedup": "use_existing"}
        sent = {k: v for k, v in options.items() if v is not None and defaults.get(k) != v}
        handle: WorkflowHandle[R]
        handle, _ = await self._send_start(
            "/v1/runs", workflow, args, kwargs, id, on_conflict, on_reuse, execution_timeout,
            sent, headers, search_attributes, signal=None)
        return handle

    async def _send_start(self, path: str, workflow: Workflow[Any, R] | str,
                     args: tuple[Any, ...], kwargs: dict[str, Any], workflow_id: str | None,
                     on_conflict: str, on_reuse: str,
                     execution_timeout: float | timedelta | None, options: dict[str, Any],
                     headers: Mapping[str, str] | None,
                     search_attributes: Mapping[str, SearchValue] | None, *,
                     signal: str | None, update: str | None = None
                     ) -> tuple[WorkflowHandle[R], dict[str, Any]]:
        """POST a start (or signal-/update-with-start) through the interceptors: the
        handle they return, and the server's answer."""
        check_choice(on_conflict, "on_conflict", opts.ON_CONFLICT)
        check_choice(on_reuse, "on_reuse", opts.ON_REUSE)
        check_seconds(execution_timeout, "execution_timeout")
        wf = self._workflow(workflow)
        given = check_headers(headers)

        answer: dict[str, Any] = {}

        async def create(call: StartInput) -> WorkflowHandle[Any]:
            chosen = wf if call.workflow == wf.name else self._workflow(call.workflow)
            checked = given if call.headers is given else check_headers(call.headers)
            wid = check_id(call.workflow_id) if call.workflow_id is not None else None
            check_search_attributes(call.search_attributes)
            chosen.check_arguments(call.args, call.kwargs,
                                   what=f"workflow {chosen.name!r} called")
            raw = orjson.loads(chosen.encode_input(
                call.args, dict(call.kwargs), what=f"the arguments of workflow {chosen.name!r}"))
            body = {"workflow": chosen.name, "id": wid or new_id(),
                    "args": raw["args"], "kwargs": raw["kwargs"], **options}
            if checked:
                body["headers"] = checked
            if call.search_attributes:
                body["search_attributes"] = dict(call.search_attributes)
            # The id is the idempotency key: sent again, the same start (unless a policy
            # would make a second run of it).
            same = on_conflict == "use_existing" and on_reuse == "use_existing" \
                and (signal is None or "signal_id" in options)  # a signal: only with its id
            wait = options.get("timeout")
            try:
                _, data = await self.call("POST", path, body=body, idempotent=same,
                                          timeout=None if wait is None else wait + self._slack)
            except ServerUnavailableError as exc:
                if wid is None:  # the id made here: the caller's way to the same start
                    exc.workflow_id = body["id"]
                    exc.args = (f"{exc} (the start may have been stored: its workflow id is "
                                f"{body['id']!r}; start again with that id)",)
                raise
            # An update-with-start answers with the update, not with the run's status.
            status = None if update is not None else RunStatus(data["status"])
            handle: RemoteHandle[Any] = RemoteHandle(
                self, data["workflow_id"], data.get("run_id"), result_hint=chosen.return_hint,
                start_status=status)
            answer.update(data)  # an update-with-start's result, for the caller
            return handle

        call = StartInput(workflow=wf.name, args=args, kwargs=kwargs, workflow_id=workflow_id,
                          signal=signal, update=update, headers=given,
                          search_attributes=search_attributes)
        handle: WorkflowHandle[R] = await intercept(self._interceptors, "start", call, create)
        return handle, answer

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
        """Signal the live run of ``id``, starting it first if there is none, in one
        transaction on the server: :meth:`duro.Client.signal_with_start`."""
        if signal_id is not None:
            check_id(signal_id, "signal id")
        data = encode(payload, what=f"the payload of signal {signal!r}")
        options: dict[str, Any] = {"signal": check_id(signal, "signal name"),
                                   "payload": _json(data)}
        if signal_id is not None:
            options["signal_id"] = signal_id
        if on_reuse != "use_existing":
            options["on_reuse"] = on_reuse
        if execution_timeout is not None:
            options["execution_timeout"] = _seconds(execution_timeout)
        handle: WorkflowHandle[R]
        handle, _ = await self._send_start(
            "/v1/signal-with-start", workflow, args, kwargs, id, "use_existing", on_reuse,
            execution_timeout, options, headers, search_attributes, signal=signal)
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
        headers: Mapping[str, str] | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
        **kwargs: Any,
    ) -> tuple[WorkflowHandle[R], Any]:
        """Send an update to the live run of ``id``, starting it first if needed, and
        wait for its result: :meth:`duro.Client.update_with_start`."""
        update_id = str(uuid.uuid4()) if update_id is None else check_id(update_id, "update id")
        wait = check_seconds(timeout, "timeout")
        data = encode(list(update_args), what=f"the arguments of update {update!r}")
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            left = _LONGEST_WAIT if deadline is None else deadline - time.monotonic()
            options: dict[str, Any] = {"update": check_id(update, "update name"),
                                       "update_args": _json(data), "update_id": update_id,
                                       "timeout": max(0.001, min(left, _LONGEST_WAIT))}
            if on_reuse != "use_existing":
                options["on_reuse"] = on_reuse
            handle: WorkflowHandle[R]
            answer: dict[str, Any]
            handle, answer = await self._send_start(
                "/v1/update-with-start", workflow, args, kwargs, id, "use_existing",
                on_reuse, None, options, headers, search_attributes, signal=None,
                update=update)
            if "result" in answer:
                return handle, answer["result"]
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"update {update!r} had no outcome within {timeout}s")

    def get_handle(self, workflow_id: str, run_id: str | None = None,
                   *, result_type: Any = Any) -> WorkflowHandle[Any]:
        """A handle to an existing run, whose methods go through the server."""
        self._require_open()
        return RemoteHandle(self, workflow_id, run_id, result_hint=result_type)

    async def queues(self) -> Sequence[QueueStats]:
        """Each queue's depth, running count and limits (``GET /v1/queues``)."""
        _, data = await self.call("GET", "/v1/queues", idempotent=True)
        return [queue_from_json(q) for q in data["queues"]]

    async def workers(self) -> Sequence[WorkerInfo]:
        """The workers registered in the server's store (``GET /v1/workers``)."""
        _, data = await self.call("GET", "/v1/workers", idempotent=True)
        return [WorkerInfo.from_json(w) for w in data["workers"]]

    async def stats(self, *, since: float | timedelta | datetime | None = None,
                    workflow: str | None = None) -> Stats:
        """Analytics of the token's namespace (``GET /v1/stats``): :meth:`duro.Client.stats`.
        A timedelta is sent as a duration: the window ends at the server's now."""
        self._require_open()
        stats_window(since, self.clock.now())  # refused here as embedded, before a request
        params: dict[str, str] = {}
        if workflow is not None:
            params["workflow"] = check_id(workflow, "workflow name")
        if isinstance(since, timedelta):
            params["since"] = f"{since.total_seconds():.6f}s"
        elif since is not None:
            params["since"] = repr(since.timestamp() if isinstance(since, datetime)
                                   else float(since))
        _, data = await self.call("GET", "/v1/stats", params=params, idempotent=True)
        return Stats.from_json(data)

    # -- messages ------------------------------------------------------------------------

    async def signal(self, workflow_id: str, name: str, payload: Any = None, *,
                     id: str | None = None,
                     headers: Mapping[str, str] | None = None) -> None:
        """Send a signal to the live run: :meth:`duro.Client.signal`. Sent again after a
        lost answer only with a delivery ``id`` (which makes it the same signal)."""
        self._require_open()
        await intercept(self._interceptors, "signal",
                        SignalInput(workflow_id=workflow_id, name=name, payload=payload,
                                    headers=check_headers(headers), signal_id=id),
                        self._signal)

    async def _signal(self, call: SignalInput) -> None:
        signal_id = None if call.signal_id is None else check_id(call.signal_id, "signal id")
        data = encode(call.payload, what=f"the payload of signal {call.name!r}")
        body: dict[str, Any] = {"payload": _json(data)}
        if signal_id is not None:
            body["signal_id"] = signal_id
        if headers := check_headers(call.headers):
            body["headers"] = headers
        await self.call("POST", self._runs(call.workflow_id, "signals",
                                           segment(call.name, "signal name")),
                        body=body, idempotent=signal_id is not None)

    async def update(self, workflow_id: str, name: str, *args: Any, id: str | None = None,
                     timeout: float | None = None, type: Any = Any,
                     headers: Mapping[str, str] | None = None) -> Any:
        """Send an update and wait for its result: :meth:`duro.Client.update`. The
        server waits at most a minute per request; past it, the same update (same id)
        is asked again until ``timeout``."""
        self._require_open()

        async def send(call: UpdateInput) -> Any:
            update_id = (str(uuid.uuid4()) if call.update_id is None
                         else check_id(call.update_id, "update id"))
            wait = check_seconds(call.timeout, "timeout")
            data = encode(list(call.args), what=f"the arguments of update {call.name!r}")
            path = self._runs(call.workflow_id, "updates", segment(call.name, "update name"))
            body: dict[str, Any] = {"args": _json(data), "id": update_id}
            if checked := check_headers(call.headers):
                body["headers"] = checked
            deadline = None if wait is None else time.monotonic() + wait
            while True:
                left = _LONGEST_WAIT if deadline is None else deadline - time.monotonic()
                body["timeout"] = max(0.001, min(left, _LONGEST_WAIT))
                status, answer = await self.long_poll(
                    "POST", path, wait=body["timeout"], deadline=deadline, body=body,
                    what=f"update {call.name!r} had no outcome within {call.timeout}s")
                if status == 200:
                    return convert(answer["result"], type)
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"update {call.name!r} had no outcome within "
                                       f"{call.timeout}s")

        return await intercept(self._interceptors, "update",
                               UpdateInput(workflow_id=workflow_id, name=name, args=args,
                                           update_id=id, timeout=timeout,
                                           headers=check_headers(headers)), send)

    @property
    def _slack(self) -> float:
        """Seconds a waiting request may take beyond its wait."""
        return DEFAULT_TIMEOUT

    async def long_poll(self, method: str, path: str, *, wait: float,
                        deadline: float | None, what: str, **options: Any
                        ) -> tuple[int, Any]:
        """One request the server holds up to ``wait`` seconds, sent again while the
        server does not answer (it restarts): until ``deadline`` (then
        :class:`TimeoutError`, ``what`` saying what did not happen in time) or, without
        one, until it has not answered for the client's timeout. No request outlasts
        the deadline by more than a second (the server answers as its own wait ends).
        """
        answer_by = None if deadline is None else deadline + _ANSWER_GRACE
        return await patiently(
            functools.partial(self.call, method, path, idempotent=True,
                              timeout=wait + self._slack, deadline=answer_by, **options),
            deadline=deadline, patience=self.transport.timeout, what=what)

    async def query(self, workflow_id: str, name: str, *args: Any, run_id: str | None = None,
                    type: Any = Any, timeout: float | None = None,
                    headers: Mapping[str, str] | None = None) -> Any:
        """Ask the run a question, answered by the server (from its worker's code):
        :meth:`duro.Client.query`."""
        self._require_open()
        wait = check_seconds(timeout, "timeout")

        async def ask(call: QueryInput) -> Any:
            data = encode(list(call.args), what=f"the arguments of query {call.name!r}")
            body: dict[str, Any] = {"args": _json(data),
                                    "timeout": min(wait or _DEFAULT_QUERY_TIMEOUT,
                                                   _LONGEST_WAIT)}
            if call.run_id is not None:
                body["run_id"] = call.run_id
            if checked := check_headers(call.headers):
                body["headers"] = checked
            # Bounded by its timeout; a server that cannot be reached is the
            # ServerUnavailableError it always was (a query is no long wait).
            _, answer = await self.call(
                "POST", self._runs(call.workflow_id, "queries", segment(call.name, "query name")),
                body=body, idempotent=True, timeout=body["timeout"] + self._slack,
                deadline=time.monotonic() + body["timeout"] + _ANSWER_GRACE)
            return convert(answer["result"], type)

        return await intercept(self._interceptors, "query",
                               QueryInput(workflow_id=workflow_id, run_id=run_id, name=name,
                                          args=args, headers=check_headers(headers)), ask)

    # -- acting on runs ------------------------------------------------------------------

    async def _made(self, action: str, workflow_id: str, body: dict[str, Any] | None = None
                    ) -> WorkflowHandle[Any]:
        _, data = await self.call("POST", self._runs(workflow_id, action), body=body)
        name = data.get("workflow_name")
        return RemoteHandle(self, data["workflow_id"], data["run_id"],
                            result_hint=Any if name is None else _return_hint(name))

    async def retry(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Re-run a failed or timed-out run from where it failed (``POST .../retry``):
        :meth:`duro.Client.retry`."""
        return await self._made("retry", workflow_id)

    async def reset(self, workflow_id: str, *, to: int) -> WorkflowHandle[Any]:
        """A new run of the id from the history's first ``to`` events:
        :meth:`duro.Client.reset`."""
        check_count(to, "to", minimum=1)
        return await self._made("reset", workflow_id, {"to": to})

    async def fork(self, workflow_id: str, *, to: int | None = None,
                   new_id: str | None = None) -> WorkflowHandle[Any]:
        """A new run under a new id from a prefix of this run's history:
        :meth:`duro.Client.fork`."""
        body: dict[str, Any] = {}
        if to is not None:
            body["to"] = check_count(to, "to", minimum=1)
        if new_id is not None:
            body["id"] = check_id(new_id)
        return await self._made("fork", workflow_id, body)

    async def cancel(self, workflow_id: str) -> None:
        """Ask the live run to cancel: :meth:`duro.Client.cancel`."""
        self._require_open()

        async def cancel(call: CancelInput) -> None:
            path = self._runs(call.workflow_id, "cancel")
            try:
                await self.call("POST", path)
            except ServerUnavailableError:
                # Sent, maybe taken, its answer lost: ask again. A run the first request
                # cancelled meanwhile is no longer live: that is the cancel's success,
                # not the "no live run" the second request gets.
                try:
                    await self.call("POST", path, idempotent=True)
                except RunNotFoundError:
                    # Taken if the run recorded a cancellation before it ended (it may
                    # have caught it and ended otherwise).
                    history = await self.get_handle(call.workflow_id).history()
                    if not any(e.kind == EventKind.CANCEL_REQUESTED for e in history):
                        raise

        await intercept(self._interceptors, "cancel", CancelInput(workflow_id=workflow_id),
                        cancel)

    async def terminate(self, workflow_id: str, *, reason: str = "terminated") -> None:
        """Stop the live run at once: :meth:`duro.Client.terminate`."""
        self._require_open()

        async def terminate(call: TerminateInput) -> None:
            await self.call("POST", self._runs(call.workflow_id, "terminate"),
                            body={"reason": call.reason})

        await intercept(self._interceptors, "terminate",
                        TerminateInput(workflow_id=workflow_id, reason=check_reason(reason)),
                        terminate)

    async def resume(self, workflow_id: str) -> None:
        """Retry a parked run now: :meth:`duro.Client.resume` (``POST .../resume``)."""
        self._require_open()
        await self.call("POST", self._runs(workflow_id, "resume"))

    # -- listing -------------------------------------------------------------------------

    async def list(
        self, *, status: str | None = None, name: str | None = None, limit: int = 100,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None, id_prefix: str | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
    ) -> builtins.list[RunInfo]:
        """Up to ``limit`` runs, newest first, that match every filter given:
        :meth:`duro.Client.list` (read a page of at most 10,000 at a time)."""
        self._require_open()
        check_count(limit, "limit", minimum=0)
        params = _filters(status, name, created_after, created_before, id_prefix,
                          search_attributes)
        runs: builtins.list[RunInfo] = []
        cursor: str | None = None
        while len(runs) < limit:
            page = await self._get_page(params, min(MAX_PAGE_SIZE, limit - len(runs)), cursor)
            runs += page.runs
            cursor = page.next_cursor
            if cursor is None:
                break
        return runs

    async def list_page(
        self, *, status: str | None = None, name: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None, id_prefix: str | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None, page_size: int = 100,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs (``GET /v1/runs``): :meth:`duro.Client.list_page`, the same
        filters, order and cursors."""
        self._require_open()
        params = _filters(status, name, created_after, created_before, id_prefix,
                          search_attributes)
        check_count(page_size, "page_size", maximum=MAX_PAGE_SIZE)
        if cursor is not None:
            decode_cursor(cursor)  # a malformed one is refused here, as embedded
        return await self._get_page(params, page_size, cursor)

    def iter_runs(
        self, *, status: str | None = None, name: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None, id_prefix: str | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None, page_size: int = 100,
    ) -> AsyncIterator[RunInfo]:
        """Every run that matches the filters, newest first, read page by page:
        :meth:`duro.Client.iter_runs`."""
        self._require_open()
        params = _filters(status, name, created_after, created_before, id_prefix,
                          search_attributes)
        check_count(page_size, "page_size", maximum=MAX_PAGE_SIZE)
        return self._pages(params, page_size)

    async def _pages(self, params: dict[str, str], page_size: int) -> AsyncIterator[RunInfo]:
        cursor: str | None = None
        while True:
            page = await self._get_page(params, page_size, cursor)
            for run in page.runs:
                yield run
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _get_page(self, params: dict[str, str], page_size: int,
                    cursor: str | None) -> RunPage:
        query = {**params, "limit": str(page_size)}
        if cursor is not None:
            query["cursor"] = cursor
        _, data = await self.call("GET", "/v1/runs", params=query, idempotent=True)
        return RunPage.from_json(data)

    async def run_infos(self, records: Sequence[RunRecord]) -> builtins.list[RunInfo]:
        """Not through a server: store records are read where the store is."""
        _local_only("reading store records")

    async def run_info(self, record: RunRecord) -> RunInfo:
        """Not through a server: store records are read where the store is."""
        _local_only("reading store records")


def _local_only(what: str) -> NoReturn:
    raise LocalOnlyError(f"{what} needs the database: not available through a server "
                         "(use a client on the store)")


def _filters(status: str | None, name: str | None, created_after: datetime | float | None,
             created_before: datetime | float | None, id_prefix: str | None,
             search_attributes: Mapping[str, SearchValue] | None) -> dict[str, str]:
    """The query parameters of a listing, checked as the embedded client checks them."""
    RunFilter.of(status=status, name=name, created_after=created_after,
                 created_before=created_before, id_prefix=id_prefix,
                 search_attributes=search_attributes)
    params: dict[str, str] = {}
    for key, value in (("status", status), ("workflow", name), ("id_prefix", id_prefix)):
        if value is not None:
            params[key] = value
    for key, when in (("created_after", created_after), ("created_before", created_before)):
        if when is not None:
            params[key] = when.isoformat() if isinstance(when, datetime) else repr(float(when))
    for attr, wanted in (search_attributes or {}).items():
        params[f"search.{attr}"] = orjson.dumps(wanted).decode()
    return params
