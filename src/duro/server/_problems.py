"""What a request may get wrong and how the API says so: ``application/problem+json``
documents with a stable ``code`` per error type, and the readers of bodies, path and
query parameters that refuse bad input before anything is stored.

A caller's mistake is always a 4xx; a 5xx means the store (503) or duro (500) failed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from duro._checks import check_id, shown
from duro.errors import (
    ApprovalNotFoundError,
    ApprovalNotPendingError,
    AuthenticationError,
    DataRejectedError,
    DuroError,
    ErrorInfo,
    InvalidArgumentError,
    OperationNotFoundError,
    PermissionDeniedError,
    QueryError,
    QueryTimeoutError,
    RunNotFoundError,
    SerializationError,
    UpdateFailedError,
    UpdateRejectedError,
    WorkflowAlreadyStartedError,
    WorkflowArgumentsError,
    WorkflowIdTakenError,
    WorkflowNotFoundError,
)
from duro.schedules._errors import ScheduleAlreadyExistsError, ScheduleNotFoundError
from duro.server._webhooks import InvalidSignatureError

__all__ = ["MAX_BODY", "PROBLEMS", "BadRequest", "BodyTooLarge", "Conflict", "NotEnabled",
           "body_of", "field", "json", "json_of", "location", "path_id", "problem",
           "problem_document", "problem_of", "query_float", "query_int", "query_time",
           "raw_body"]

MAX_BODY = 4 * 1024 * 1024
"""Bytes of a request body at most (payloads larger belong in a blob store)."""


class BadRequest(Exception):
    """A request the API cannot read (not JSON, a missing, unknown or mistyped field)."""


class BodyTooLarge(BadRequest):
    """A body over :data:`MAX_BODY` (refused by its ``Content-Length`` before it is read,
    or as soon as the bytes received pass the limit)."""


class NotEnabled(Exception):
    """A route of a feature this server was started without (``/metrics`` without
    ``duro serve --metrics``)."""


class Conflict(Exception):
    """The run (or schedule) is not in a state that allows the action (retry of a run
    that did not fail)."""


PROBLEMS: tuple[tuple[type[BaseException], int, str], ...] = (
    (BodyTooLarge, 413, "body_too_large"),
    (BadRequest, 400, "bad_request"),
    (InvalidSignatureError, 401, "invalid_signature"),
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (RunNotFoundError, 404, "run_not_found"),
    (WorkflowNotFoundError, 404, "workflow_not_found"),
    (OperationNotFoundError, 404, "operation_not_found"),
    (ScheduleNotFoundError, 404, "schedule_not_found"),
    (ApprovalNotFoundError, 404, "approval_not_found"),
    (ApprovalNotPendingError, 409, "approval_not_pending"),
    (WorkflowIdTakenError, 409, "workflow_id_taken"),
    (WorkflowAlreadyStartedError, 409, "workflow_already_started"),
    (ScheduleAlreadyExistsError, 409, "schedule_already_exists"),
    (Conflict, 409, "conflict"),
    (NotEnabled, 404, "not_enabled"),
    (UpdateRejectedError, 422, "update_rejected"),
    (UpdateFailedError, 422, "update_handler_failed"),
    (QueryTimeoutError, 504, "query_timeout"),
    (QueryError, 422, "query_failed"),
    (SerializationError, 400, "invalid_payload"),
    (InvalidArgumentError, 400, "invalid_argument"),
    # A value the database refuses for good (too long to index...): retrying the same
    # request cannot help, so it is the caller's, not the store's unavailability.
    (DataRejectedError, 422, "data_rejected"),
)
"""(error type, status, code), the most specific first: the table of docs/http.md."""


def problem_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and stable error code of a duro error (500 for the unexpected)."""
    for kind, status, code in PROBLEMS:
        if isinstance(exc, kind):
            return status, code
    if isinstance(exc, DuroError):
        return 503, "store_unavailable" if type(exc).__name__.endswith("StoreError") \
            else "engine_error"
    return 500, "internal_error"


def json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(orjson.dumps(data), status_code=status, headers=headers,
                    media_type="application/json")


def location(collection: str, key: str) -> dict[str, str]:
    """The ``Location`` header of a run or schedule: its id percent-encoded (a header
    is Latin-1; an id is any text)."""
    return {"Location": f"/v1/{collection}/{quote(key, safe='')}"}


def problem_document(status: int, code: str, detail: str) -> dict[str, Any]:
    """The body of a problem response (RFC 9457)."""
    return {"type": f"https://duro.dev/problems/{code}", "title": code.replace("_", " "),
            "status": status, "code": code, "detail": detail}


def problem(exc: BaseException) -> Response:
    """The problem response of an error (an unexpected one's detail is not shown)."""
    status, code = problem_of(exc)
    detail = str(exc) if status < 500 or isinstance(exc, DuroError) else "internal error"
    document = problem_document(status, code, detail)
    cause = getattr(exc, "cause", None) if isinstance(exc, DuroError) else None
    if isinstance(cause, ErrorInfo):
        # What an update's handler raised, as a run's error is shown: a remote client
        # raises the same UpdateFailedError, with the same cause, as an embedded one.
        document["cause"] = cause.to_dict()
    if isinstance(exc, WorkflowArgumentsError):
        document["arguments"] = True  # they do not fit the workflow (a remote client's type)
    if isinstance(exc, WorkflowAlreadyStartedError):
        # The run that holds the id (what an embedded client's error carries; none of
        # another namespace's: store/_rules.taken() leaves them out).
        document["workflow_id"], document["run_id"] = exc.workflow_id, exc.run_id
        document["workflow_name"] = exc.workflow_name
    if isinstance(exc, ApprovalNotPendingError):
        document["approval_id"], document["approval_status"] = exc.approval_id, exc.status
    # RFC 9110: a 401 says how to authenticate.
    headers = {"WWW-Authenticate": 'Bearer realm="duro"'} if code == "unauthenticated" \
        else None
    return Response(orjson.dumps(document), status_code=status, headers=headers,
                    media_type="application/problem+json")


async def raw_body(request: Request) -> bytes:
    """The request's body, as received (kept: a later ``request.body()`` returns it).

    Raises:
        BodyTooLarge: Over :data:`MAX_BODY`, told by its ``Content-Length`` (then nothing
            of it is read) or by the bytes received (reading stops there): a client must
            not make the server hold more than that, signed or not.
    """
    kept: bytes | None = getattr(request, "_body", None)
    if kept is not None:
        return kept
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyTooLarge(f"the body is {declared} bytes, over {MAX_BODY}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge(f"the body is over {MAX_BODY} bytes")
        chunks.append(chunk)
    body = request._body = b"".join(chunks)  # Starlette's own cache of the body
    return body


async def json_of(request: Request) -> Any:
    """The request's body as any JSON value (None for no body).

    Raises:
        BadRequest: Too large, or not JSON.
    """
    raw = await raw_body(request)
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None


async def body_of(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The request's JSON object (``{}`` for no body), with only ``allowed`` fields: a
    misspelt option must not be silently ignored.

    Raises:
        BadRequest: Too large, not JSON, not an object, or an unknown field.
    """
    data = await json_of(request)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    if not allowed.issuperset(data):
        unknown = sorted(set(data) - allowed)
        raise BadRequest(f"unknown field {shown(unknown[0])}: the fields are "
                         f"{', '.join(sorted(allowed))}")
    return data


_NAMES = {str: "a string", list: "an array", dict: "an object", int: "an integer",
          float: "a number", bool: "a boolean"}


def field(body: Mapping[str, Any], name: str, kind: type, default: Any = None, *,
          required: bool = False) -> Any:
    """A body field of JSON type ``kind`` (str, list, dict, int, float, bool), or
    ``default`` when absent or null. ``float`` takes integers too; ``int`` takes no
    booleans and ``float`` no infinities.

    Raises:
        BadRequest: It is required and absent, or of another type.
    """
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name!r} is required")
        return default
    ok = (isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)) \
        or (kind is float and type(value) is int)
    if not ok:
        raise BadRequest(f"{name!r} must be {_NAMES[kind]}, not {shown(value)}")
    if kind is float and not math.isfinite(value):
        raise BadRequest(f"{name!r} must be a finite number")
    return float(value) if kind is float else value


def path_id(request: Request, name: str, what: str) -> str:
    """A path parameter that is an id or a name, checked as ids are at a start (so a
    control character or an absurd length is a 400, not a store error)."""
    return check_id(request.path_params[name], what)


def query_int(request: Request, name: str, default: int, *, minimum: int,
              maximum: int) -> int:
    """An integer query parameter from ``minimum`` to ``maximum``.

    Raises:
        InvalidArgumentError: Not such an integer.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise InvalidArgumentError(f"{name} must be a whole number from {minimum} to "
                                   f"{maximum}, not {shown(raw)}")
    return value


def query_float(request: Request, name: str, default: float) -> float:
    """A number of seconds (zero or more) in a query parameter.

    Raises:
        InvalidArgumentError: Not such a number.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"{name} must be a number of seconds (zero or more), not "
                                   f"{shown(raw)}")
    return value


def query_time(request: Request, name: str) -> dt.datetime | float | None:
    """A time in a query parameter: epoch seconds, or ISO 8601 with a UTC offset."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InvalidArgumentError(f"{name} must be epoch seconds or ISO 8601 with a UTC "
                                   f"offset (2024-05-01T12:00:00Z), not {shown(raw)}")
    return when
