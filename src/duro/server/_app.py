"""The HTTP API over a :class:`duro.Client`: an ASGI application (Starlette).

Every route talks to the store through the client only, never to a worker: the same
application serves a process with the workflows' code or without it. Errors are
``application/problem+json`` with a stable ``code`` per duro error type; input a caller
can get wrong is a 4xx, never a 500.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from duro.client import Client, WorkflowHandle
from duro.errors import (
    DuroError,
    InvalidArgumentError,
    QueryError,
    QueryTimeoutError,
    RunNotFoundError,
    SerializationError,
    UpdateFailedError,
    UpdateRejectedError,
    WorkflowAlreadyStartedError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowTerminatedError,
)
from duro.server._webhooks import (
    InvalidSignatureError,
    WebhookAuth,
    check_webhooks,
    delivery,
    verify,
)

__all__ = ["MAX_WAIT", "create_app", "problem_of"]

MAX_WAIT = 60.0
"""Seconds a long-poll (``/result?wait=``) may hold a request at most."""

_MAX_BODY = 4 * 1024 * 1024
"""Bytes of a request body at most (payloads larger belong in a blob store)."""

# (status, code) by error type, the most specific first.
_PROBLEMS: tuple[tuple[type[BaseException], int, str], ...] = (
    (InvalidSignatureError, 401, "invalid_signature"),
    (RunNotFoundError, 404, "run_not_found"),
    (WorkflowNotFoundError, 404, "workflow_not_found"),
    (WorkflowAlreadyStartedError, 409, "workflow_already_started"),
    (UpdateRejectedError, 422, "update_rejected"),
    (UpdateFailedError, 422, "update_handler_failed"),
    (QueryTimeoutError, 504, "query_timeout"),
    (QueryError, 422, "query_failed"),
    (SerializationError, 400, "invalid_payload"),
    (InvalidArgumentError, 400, "invalid_argument"),
)


class _BadRequest(Exception):
    """A request the API cannot read (not JSON, a missing or mistyped field)."""


def problem_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and stable error code of a duro error (500 for the unexpected)."""
    for kind, status, code in _PROBLEMS:
        if isinstance(exc, kind):
            return status, code
    if isinstance(exc, _BadRequest):
        return 400, "bad_request"
    if isinstance(exc, DuroError):
        return 503, "store_unavailable" if type(exc).__name__.endswith("StoreError") \
            else "engine_error"
    return 500, "internal_error"


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers,
                    media_type="application/json")


def _problem(exc: BaseException) -> Response:
    status, code = problem_of(exc)
    detail = str(exc) if status < 500 or isinstance(exc, DuroError) else "internal error"
    return Response(orjson.dumps({"type": f"https://duro.dev/problems/{code}",
                                  "title": code.replace("_", " "), "status": status,
                                  "code": code, "detail": detail}),
                    status_code=status, media_type="application/problem+json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise _BadRequest(f"the body is {len(raw)} bytes, over {_MAX_BODY}")
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRequest("the body must be a JSON object")
    return data


def _field(body: Mapping[str, Any], name: str, kind: type, default: Any = None, *,
           required: bool = False) -> Any:
    """A body field of JSON type ``kind`` (str, list or dict), or ``default``."""
    if name not in body or body[name] is None:
        if required:
            raise _BadRequest(f"{name!r} is required")
        return default
    value = body[name]
    if not isinstance(value, kind):
        raise _BadRequest(f"{name!r} must be a {kind.__name__}, not {type(value).__name__}")
    return value


Handler = Callable[[Request, Client], Awaitable[Response]]


def create_app(client: Client, *, own_client: bool = False,
               webhooks: Mapping[str, WebhookAuth] | None = None) -> Starlette:
    """The API as an ASGI application over ``client`` (opened by the application's
    lifespan when ``own_client``; else the caller opens and closes it). Mount it in your
    own ASGI app, or serve it with ``duro serve``.

    ``webhooks`` guards routes by name (``"signal-with-start"``, ``"signal"``,
    ``"start"``) with a provider's HMAC signature (:class:`WebhookAuth`): a request whose
    signature does not match is refused (401 ``invalid_signature``) before its body is
    read as JSON, and stores nothing.

    Routes (all JSON; see docs/http.md):

    * ``POST /v1/runs``: start a run, 202 with ``Location``;
    * ``POST /v1/signal-with-start``: the webhook pattern, one atomic operation, 202;
    * ``GET /v1/runs/{workflow_id}``: the run;
    * ``GET /v1/runs/{workflow_id}/result?wait=S``: its outcome, long-polled;
    * ``POST /v1/runs/{workflow_id}/signals/{name}``: a signal, 202;
    * ``GET /healthz``.

    Raises:
        InvalidArgumentError: ``webhooks`` names an unknown route.
    """
    guarded = check_webhooks(webhooks)

    def route(handler: Handler, path: str, method: str = "POST") -> Route:
        auth = guarded.get(path)

        async def endpoint(request: Request) -> Response:
            try:
                if auth is not None:
                    # The raw bytes, as signed (Starlette keeps them for _body to read).
                    verify(auth, await request.body(), request.headers)
                    request.state.webhook = auth
                return await handler(request, client)
            except Exception as exc:  # every failure is a problem document
                return _problem(exc)

        return Route(path, endpoint, methods=[method])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if own_client:
            await client.open()
        try:
            yield
        finally:
            if own_client:
                await client.close()

    return Starlette(routes=[
        route(_healthz, "/healthz", "GET"),
        route(_start, "/v1/runs"),
        route(_signal_with_start, "/v1/signal-with-start"),
        route(_describe, "/v1/runs/{workflow_id}", "GET"),
        route(_result, "/v1/runs/{workflow_id}/result", "GET"),
        route(_signal, "/v1/runs/{workflow_id}/signals/{name}"),
    ], lifespan=lifespan)


async def _healthz(request: Request, client: Client) -> Response:
    return _json({"ok": True})


def _start_options(body: Mapping[str, Any]) -> dict[str, Any]:
    return {"headers": _field(body, "headers", dict),
            "search_attributes": _field(body, "search_attributes", dict)}


def _accepted(workflow_id: str, run_id: str | None, status: str) -> Response:
    return _json({"workflow_id": workflow_id, "run_id": run_id, "status": status}, 202,
                 {"Location": f"/v1/runs/{workflow_id}"})


async def _started(handle: WorkflowHandle[Any]) -> Response:
    """202 for the run a start returned: as the start left it (no second read), unless an
    interceptor made the handle some other way."""
    if handle.run_id is not None and handle.start_status is not None:
        return _accepted(handle.workflow_id, handle.run_id, handle.start_status.value)
    info = await handle.describe()
    return _accepted(info.workflow_id, info.run_id, info.status.value)


async def _start(request: Request, client: Client) -> Response:
    body = await _body(request)
    workflow = _field(body, "workflow", str, required=True)
    workflow_id = _field(body, "id", str) or request.headers.get("idempotency-key")
    args = _field(body, "args", list, [])
    kwargs = _field(body, "kwargs", dict, {})
    handle = await client.start(workflow, *args, id=workflow_id,
                                **_start_options(body), **kwargs)
    return await _started(handle)


def _delivery(request: Request,
              body: Mapping[str, Any]) -> tuple[Mapping[str, Any], Any, str | None]:
    return delivery(body, request.query_params, request.headers,
                    getattr(request.state, "webhook", None))


async def _signal_with_start(request: Request, client: Client) -> Response:
    fields, payload, signal_id = _delivery(request, await _body(request))
    workflow = _field(fields, "workflow", str, required=True)
    workflow_id = _field(fields, "id", str) or request.headers.get("idempotency-key")
    if not workflow_id:
        raise _BadRequest("'id' (or an Idempotency-Key header) is required: it is what "
                          "makes a retried delivery a no-op")
    signal = _field(fields, "signal", str, required=True)
    args = _field(fields, "args", list, [])
    kwargs = _field(fields, "kwargs", dict, {})
    handle = await client.signal_with_start(
        workflow, *args, id=workflow_id, signal=signal, payload=payload,
        signal_id=signal_id, **_start_options(fields), **kwargs)
    return await _started(handle)


async def _describe(request: Request, client: Client) -> Response:
    handle = client.get_handle(request.path_params["workflow_id"])
    return _json((await handle.describe()).to_json())


async def _result(request: Request, client: Client) -> Response:
    raw = request.query_params.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        raise InvalidArgumentError(f"wait must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(wait) or wait < 0:
        raise InvalidArgumentError(f"wait must be 0 to {MAX_WAIT:g} seconds, not {raw}")
    handle = client.get_handle(request.path_params["workflow_id"])
    if wait > 0:
        with contextlib.suppress(TimeoutError, WorkflowFailedError, WorkflowCancelledError,
                                 WorkflowTerminatedError):
            await handle.result(timeout=min(wait, MAX_WAIT))
    info = await handle.describe()
    # 200 once the run has ended (its result or error inside), 202 while it runs.
    return _json(info.to_json(), 200 if info.status.is_terminal else 202)


async def _signal(request: Request, client: Client) -> Response:
    fields, payload, signal_id = _delivery(request, await _body(request))
    workflow_id = request.path_params["workflow_id"]
    await client.signal(workflow_id, request.path_params["name"], payload, id=signal_id,
                        headers=_field(fields, "headers", dict))
    info = await client.get_handle(workflow_id).describe()
    return _accepted(info.workflow_id, info.run_id, info.status.value)
