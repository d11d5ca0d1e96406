"""The routes of runs: start them, message them (signals, updates, queries), act on them
(cancel, terminate, retry, reset, fork), find them and read their histories.

Every handler goes through the :class:`duro.Client` only (never a worker or the store):
the same routes serve a process with the workflows' code or without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from duro._checks import check_id, check_reason, shown
from duro.client import Client, RunInfo, WorkflowHandle
from duro.client._listing import MAX_PAGE_SIZE
from duro.errors import (
    DuroError,
    InvalidArgumentError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowTerminatedError,
)
from duro.server._budgets import budgets_in
from duro.server._problems import (
    BadRequest,
    Conflict,
    body_of,
    field,
    json,
    json_of,
    location,
    path_id,
    query_float,
    query_int,
    query_time,
)
from duro.server._routes import Api
from duro.server._schedules import instant
from duro.server._webhooks import delivery

__all__ = ["MAX_HISTORY_PAGE", "MAX_WAIT", "SEARCH_PREFIX", "cancel", "children", "describe",
           "fork", "history", "list_runs", "query", "query_post", "reset", "result", "resume",
           "retry", "signal", "signal_with_start", "start", "state", "terminate",
           "until_stopping", "update", "update_with_start", "wait_id"]

MAX_WAIT = 60.0
"""Seconds a request may wait at most (``/result?wait=``, an update's outcome, a query
answered through the store)."""

MAX_HISTORY_PAGE = 10_000
"""Events one history page may hold."""

SEARCH_PREFIX = "search."
"""Query parameters ``search.<key>=<value>`` filter a listing on search attributes."""

T = TypeVar("T")


def _options(method: Any) -> frozenset[str]:
    """The named parameters of a client method: keys ``kwargs`` cannot carry (they would
    be taken as the method's own options, or clash with them)."""
    return frozenset(name for name, p in inspect.signature(method).parameters.items()
                     if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


_START_OPTIONS = _options(Client.start)
_SIGNAL_START_OPTIONS = _options(Client.signal_with_start)
_UPDATE_START_OPTIONS = _options(Client.update_with_start)

_BASE = frozenset({"workflow", "id", "args", "kwargs", "headers", "search_attributes"})
# The options of Client.start a body may carry (by their JSON types): a remote client
# sends those it was given.
_REUSE_OPTIONS: tuple[tuple[str, type], ...] = (("on_reuse", str),
                                                ("execution_timeout", float))
_START_OPTION_TYPES: tuple[tuple[str, type], ...] = (
    *_REUSE_OPTIONS, ("on_conflict", str), ("queue", str), ("priority", int),
    ("concurrency_key", str), ("dedup_key", str), ("on_dedup", str), ("start_delay", float),
    ("debounce_key", str), ("debounce", float))
_START = _BASE | {name for name, _ in _START_OPTION_TYPES} | {"start_at", "budget"}
_SIGNAL_START = _BASE | {"signal", "payload", "signal_id", "on_reuse", "execution_timeout"}
_UPDATE_START = _BASE | {"update", "update_args", "update_id", "timeout", "on_reuse"}
_SIGNAL = frozenset({"payload", "headers", "signal_id"})
_UPDATE = frozenset({"args", "id", "headers", "timeout"})
_QUERY = frozenset({"args", "run_id", "timeout", "headers"})
_REASON = frozenset({"reason"})
_RESET = frozenset({"to"})
_FORK = frozenset({"to", "id"})


async def until_stopping(api: Api, work: Awaitable[T]) -> T:
    """``work``'s result, or TimeoutError as soon as the server stops (a long wait must
    not hold the shutdown; the caller asks again)."""
    task = asyncio.ensure_future(work)
    if task.done():
        return task.result()
    stop = asyncio.ensure_future(api.stopping.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            raise TimeoutError("the server is stopping")
        return task.result()
    finally:
        for pending in (task, stop):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending


def wait_id(raw: str | None, what: str) -> str | None:
    """An optional id from a query parameter or a body, checked."""
    return None if raw is None else check_id(raw, what)


def _call(body: Mapping[str, Any], options: frozenset[str],
          method: str) -> tuple[list[Any], dict[str, Any]]:
    """The workflow's ``args`` and ``kwargs`` of a start's body."""
    args = field(body, "args", list, [])
    kwargs = field(body, "kwargs", dict, {})
    if taken := options.intersection(kwargs):
        raise BadRequest(f"kwargs {shown(min(taken))} is the name of an option of "
                         f"{method}: it cannot be passed to the workflow by keyword (pass it "
                         "in args)")
    return args, kwargs


def _workflow_id(body: Mapping[str, Any], request: Request) -> str | None:
    """The body's ``id``, else the ``Idempotency-Key`` header (an empty one is refused
    by the start, never made a random id)."""
    given = field(body, "id", str)
    return given if given is not None else request.headers.get("idempotency-key")


def _with_start(body: Mapping[str, Any], request: Request, why: str) -> tuple[str, str]:
    """The workflow and the (required) workflow id of a signal- or update-with-start."""
    workflow = field(body, "workflow", str, required=True)
    workflow_id = _workflow_id(body, request)
    if workflow_id is None:
        raise BadRequest(f"'id' (or an Idempotency-Key header) is required: {why}")
    return workflow, workflow_id


def _start_options(body: Mapping[str, Any],
                   options: tuple[tuple[str, type], ...] = ()) -> dict[str, Any]:
    """The start's headers and search attributes, and those of ``options`` the body has
    (the client checks their values, as for a start in Python)."""
    given = {name: value for name, kind in options
             if name in body and (value := field(body, name, kind)) is not None}
    return {"headers": field(body, "headers", dict),
            "search_attributes": field(body, "search_attributes", dict), **given}


def _run_ref(info: RunInfo) -> dict[str, Any]:
    return {"workflow_id": info.workflow_id, "run_id": info.run_id,
            "status": info.status.value}


def _accepted(info: RunInfo, status: int = 202) -> Response:
    return json(_run_ref(info), status, location("runs", info.workflow_id))


async def _started(handle: WorkflowHandle[Any]) -> Response:
    """202 for the run a start returned: as the start left it (no second read), unless an
    interceptor made the handle some other way."""
    if handle.run_id is not None and handle.start_status is not None:
        return json({"workflow_id": handle.workflow_id, "run_id": handle.run_id,
                     "status": handle.start_status.value}, 202,
                    location("runs", handle.workflow_id))
    return _accepted(await handle.describe())


async def _delivery(request: Request,
                    allowed: frozenset[str]) -> tuple[Mapping[str, Any], Any, str | None]:
    """A signal route's (fields, payload, delivery id): fields from the body, or with
    ``?payload=body`` from the query string, the whole body (any JSON: a provider's own)
    being the payload (server/_webhooks.delivery)."""
    if "payload" in request.query_params:
        body = await json_of(request)
    else:
        body = await body_of(request, allowed)
    return delivery(body, request.query_params, request.headers,
                    getattr(request.state, "webhook", None))


def _update_id(given: str | None) -> str:
    """The update id given (checked by the client: an empty one is refused, not made a
    random one), else a new one: the response names it, so that the caller can ask
    again for the outcome of an update that outlasted its wait."""
    return given if given is not None else str(uuid.uuid4())


def _timeout(body: Mapping[str, Any]) -> float:
    """A body's ``timeout``: seconds to wait, at most :data:`MAX_WAIT` (the default)."""
    timeout: float = field(body, "timeout", float, MAX_WAIT)
    if timeout <= 0:
        raise InvalidArgumentError(f"timeout must be more than zero seconds, not {timeout:g}")
    return min(timeout, MAX_WAIT)


# -- starting and messaging -------------------------------------------------------------


async def start(request: Request, api: Api) -> Response:
    body = await body_of(request, _START)
    workflow = field(body, "workflow", str, required=True)
    args, kwargs = _call(body, _START_OPTIONS, "start")
    at = instant(body, "start_at")
    handle = await api.client.start(
        workflow, *args, id=_workflow_id(body, request),
        start_at=None if at is None else dt.datetime.fromtimestamp(at, dt.UTC),
        budget=budgets_in(body), **_start_options(body, _START_OPTION_TYPES), **kwargs)
    return await _started(handle)


async def signal_with_start(request: Request, api: Api) -> Response:
    fields, payload, signal_id = await _delivery(request, _SIGNAL_START)
    workflow, workflow_id = _with_start(fields, request, "it is what makes a retried "
                                                         "delivery a no-op")
    signal = check_id(field(fields, "signal", str, required=True), "signal name")
    args, kwargs = _call(fields, _SIGNAL_START_OPTIONS, "signal-with-start")
    handle: WorkflowHandle[Any] = await api.client.signal_with_start(
        workflow, *args, id=workflow_id, signal=signal, payload=payload,
        signal_id=signal_id, **_start_options(fields, _REUSE_OPTIONS), **kwargs)
    return await _started(handle)


async def signal(request: Request, api: Api) -> Response:
    workflow_id = path_id(request, "workflow_id", "workflow id")
    name = path_id(request, "name", "signal name")
    fields, payload, signal_id = await _delivery(request, _SIGNAL)
    await api.client.signal(workflow_id, name, payload, id=signal_id,
                            headers=field(fields, "headers", dict))
    return _accepted(await api.client.get_handle(workflow_id).describe())


async def update(request: Request, api: Api) -> Response:
    workflow_id = path_id(request, "workflow_id", "workflow id")
    name = path_id(request, "name", "update name")
    body = await body_of(request, _UPDATE)
    args = field(body, "args", list, [])
    update_id = _update_id(field(body, "id", str))
    timeout = _timeout(body)
    try:
        result = await until_stopping(api, api.client.update(
            workflow_id, name, *args, id=update_id, timeout=timeout,
            headers=field(body, "headers", dict)))
    except TimeoutError:
        # Accepted, not settled yet: the same request (same id) waits for it again.
        return json({"workflow_id": workflow_id, "update_id": update_id,
                     "status": "pending"}, 202)
    return json({"workflow_id": workflow_id, "update_id": update_id, "result": result})


async def update_with_start(request: Request, api: Api) -> Response:
    body = await body_of(request, _UPDATE_START)
    workflow, workflow_id = _with_start(body, request, "the run is found by it")
    update = check_id(field(body, "update", str, required=True), "update name")
    update_id = _update_id(field(body, "update_id", str))
    update_args = field(body, "update_args", list, [])
    timeout = _timeout(body)
    args, kwargs = _call(body, _UPDATE_START_OPTIONS, "update-with-start")
    try:
        handle: WorkflowHandle[Any]
        handle, result = await until_stopping(api, api.client.update_with_start(
            workflow, *args, id=workflow_id, update=update, update_args=update_args,
            update_id=update_id, timeout=timeout,
            **_start_options(body, _REUSE_OPTIONS[:1]), **kwargs))
    except TimeoutError:
        info = await api.client.get_handle(workflow_id).describe()
        return json({**_run_ref(info), "update_id": update_id, "status": "pending"}, 202,
                    location("runs", info.workflow_id))
    return json({"workflow_id": handle.workflow_id, "run_id": handle.run_id,
                 "update_id": update_id, "result": result},
                headers=location("runs", handle.workflow_id))


async def _ask(request: Request, api: Api, args: Any, run_id: Any, timeout: float | None,
               headers: Any) -> Response:
    workflow_id = path_id(request, "workflow_id", "workflow id")
    name = path_id(request, "name", "query name")
    if not isinstance(args, list):
        raise BadRequest(f"'args' must be a JSON array, not {shown(args)}")
    if timeout is not None and timeout <= 0:
        raise InvalidArgumentError(f"timeout must be more than zero seconds, not {timeout:g}")
    result = await until_stopping(api, api.client.query(
        workflow_id, name, *args, run_id=wait_id(run_id, "run id"),
        timeout=None if timeout is None else min(timeout, MAX_WAIT), headers=headers))
    return json({"result": result})


async def query(request: Request, api: Api) -> Response:
    raw = request.query_params.get("args", "[]")
    try:
        args = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"'args' must be a JSON array: {exc}") from None
    timeout = (query_float(request, "timeout", 0.0) if "timeout" in request.query_params
               else None)
    return await _ask(request, api, args, request.query_params.get("run_id"), timeout, None)


async def query_post(request: Request, api: Api) -> Response:
    body = await body_of(request, _QUERY)
    timeout = field(body, "timeout", float)
    return await _ask(request, api, field(body, "args", list, []),
                      field(body, "run_id", str), timeout, field(body, "headers", dict))


# -- reading ------------------------------------------------------------------------------


def _handle(request: Request, api: Api) -> WorkflowHandle[Any]:
    """The handle of the path's workflow id, pinned to ``?run_id=`` if given."""
    return api.client.get_handle(path_id(request, "workflow_id", "workflow id"),
                                 wait_id(request.query_params.get("run_id"), "run id"))


async def describe(request: Request, api: Api) -> Response:
    return json((await _handle(request, api).describe()).to_json())


async def result(request: Request, api: Api) -> Response:
    wait = min(query_float(request, "wait", 0.0), MAX_WAIT)
    handle = _handle(request, api)
    if wait > 0:
        with contextlib.suppress(TimeoutError, WorkflowFailedError, WorkflowCancelledError,
                                 WorkflowTerminatedError):
            await until_stopping(api, handle.result(timeout=wait))
    info = await handle.describe()
    # 200 once the run has ended (its result or error inside), 202 while it runs.
    return json(info.to_json(), 200 if info.status.is_terminal else 202)


async def children(request: Request, api: Api) -> Response:
    runs = await _handle(request, api).children()
    return json({"runs": [info.to_json() for info in runs]})


async def usage(request: Request, api: Api) -> Response:
    handle = _handle(request, api)
    info = await handle.describe()
    spent = await api.client.get_handle(info.workflow_id, info.run_id).usage()
    return json({"workflow_id": info.workflow_id, "run_id": info.run_id,
                 "usage": spent.to_json()})


async def waiting(request: Request, api: Api) -> Response:
    return json((await _handle(request, api).waiting()).to_json())


_UNSET = object()


async def state(request: Request, api: Api) -> Response:
    key = path_id(request, "key", "state key")
    wait = min(query_float(request, "wait", 0.0), MAX_WAIT)
    handle = _handle(request, api)
    if wait > 0:
        try:
            value = await until_stopping(api, handle.wait_state(key, timeout=wait))
        except TimeoutError:
            value = _UNSET
    else:
        value = await handle.get_state(key, default=_UNSET)
    # 200 with the value the run published last; 202 while it has published none.
    if value is _UNSET:
        return json({"workflow_id": handle.workflow_id, "key": key, "published": False},
                    202)
    return json({"workflow_id": handle.workflow_id, "key": key, "published": True,
                 "value": value})


def _attribute(raw: str) -> Any:
    """A search attribute's value: JSON if it is a string, number or bool (``12``,
    ``true``, ``"12"``), else the text itself (as ``duro ls --attr`` reads it)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    return value if isinstance(value, str | int | float | bool) else raw


async def list_runs(request: Request, api: Api) -> Response:
    query = request.query_params
    attributes = {key[len(SEARCH_PREFIX):]: _attribute(value)
                  for key, value in query.multi_items() if key.startswith(SEARCH_PREFIX)}
    page = await api.client.list_page(
        status=query.get("status"), name=query.get("workflow"),
        created_after=query_time(request, "created_after"),
        created_before=query_time(request, "created_before"), id_prefix=query.get("id_prefix"),
        search_attributes=attributes or None,
        page_size=query_int(request, "limit", 100, minimum=1, maximum=MAX_PAGE_SIZE),
        cursor=query.get("cursor"))
    return json(page.to_json())


async def history(request: Request, api: Api) -> Response:
    after = query_int(request, "after", -1, minimum=0, maximum=2**62)  # -1: from seq 0
    limit = query_int(request, "limit", 1000, minimum=1, maximum=MAX_HISTORY_PAGE)
    info = await _handle(request, api).describe()
    events = await api.client.get_handle(info.workflow_id, info.run_id).history()
    page = [e for e in events if e.seq > after][:limit + 1]
    more = len(page) > limit
    page = page[:limit]
    return json({"workflow_id": info.workflow_id, "run_id": info.run_id,
                 "status": info.status.value, "events": [e.to_json() for e in page],
                 "next_after": page[-1].seq if more else None})


# -- acting on runs -----------------------------------------------------------------------


async def cancel(request: Request, api: Api) -> Response:
    workflow_id = path_id(request, "workflow_id", "workflow id")
    await api.client.cancel(workflow_id)
    return _accepted(await api.client.get_handle(workflow_id).describe())


async def terminate(request: Request, api: Api) -> Response:
    workflow_id = path_id(request, "workflow_id", "workflow id")
    body = await body_of(request, _REASON)
    reason = check_reason(field(body, "reason", str, "terminated"))
    await api.client.terminate(workflow_id, reason=reason)
    return json((await api.client.get_handle(workflow_id).describe()).to_json())


async def _created(work: Awaitable[Any]) -> Response:
    """201 with the new run of a retry, reset or fork (its own Location)."""
    try:
        handle = await work
    except DuroError as exc:
        if type(exc) is not DuroError:  # the typed ones have their own problem codes
            raise
        raise Conflict(str(exc)) from None  # a retry of a run that did not fail
    info = await handle.describe()
    # Its workflow's name too: a remote client types the new run's result by it.
    return json({**_run_ref(info), "workflow_name": info.workflow_name}, 201,
                location("runs", info.workflow_id))


async def resume(request: Request, api: Api) -> Response:
    workflow_id = path_id(request, "workflow_id", "workflow id")
    await api.client.resume(workflow_id)
    return _accepted(await api.client.get_handle(workflow_id).describe())


async def retry(request: Request, api: Api) -> Response:
    return await _created(api.client.retry(path_id(request, "workflow_id", "workflow id")))


def _event_seq(body: Mapping[str, Any], required: bool) -> int | None:
    to: int | None = field(body, "to", int, required=required)
    if to is not None and not 1 <= to <= 2**62:
        raise InvalidArgumentError(f"'to' must be an event's sequence number, not {to}")
    return to


async def reset(request: Request, api: Api) -> Response:
    workflow_id = path_id(request, "workflow_id", "workflow id")
    body = await body_of(request, _RESET)
    to = _event_seq(body, True)
    assert to is not None
    return await _created(api.client.reset(workflow_id, to=to))


async def fork(request: Request, api: Api) -> Response:
    workflow_id = path_id(request, "workflow_id", "workflow id")
    body = await body_of(request, _FORK)
    return await _created(api.client.fork(workflow_id, to=_event_seq(body, False),
                                          new_id=field(body, "id", str)))
