"""The remote client's HTTP: one keep-alive ``httpx.AsyncClient``, the bearer token on
every request, bounded retries of what is safe to send again, and the server's problem
documents (``server/_problems.py``) turned back into the duro errors they came from.

Retries: a connection that could not be made (nothing was sent) is retried whatever the
request; a failure after the request went out (a reset, a read timeout) only for a
request the server treats as the same one when it comes again (GETs, a start or a signal
with its id, an update with its update id). :data:`ATTEMPTS` attempts at most, a short
pause between them: a server that is down is reported in about a second, not hung on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import orjson

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
    ServerUnavailableError,
    StoreError,
    UpdateFailedError,
    UpdateRejectedError,
    WorkflowAlreadyStartedError,
    WorkflowArgumentsError,
    WorkflowIdTakenError,
    WorkflowNotFoundError,
)
from duro.schedules._errors import ScheduleAlreadyExistsError, ScheduleNotFoundError

if TYPE_CHECKING:
    import httpx

__all__ = ["ATTEMPTS", "ERRORS", "PAUSES", "Transport", "error_of", "patiently", "segment"]

T = TypeVar("T")

ATTEMPTS = 4
"""Tries of one request at most (see the module's docstring for which are retried)."""
PAUSES = (0.05, 0.2, 0.5)
"""Seconds between tries."""
_STREAM_SILENCE = 60.0
"""Seconds an event stream may stay silent (the server writes a comment every 15 s)."""


def _started(kind: type[WorkflowAlreadyStartedError]
             ) -> Callable[[str, Mapping[str, Any]], DuroError]:
    """The maker of ``kind`` (the id is taken) with the run the document names."""
    def make(detail: str, problem: Mapping[str, Any]) -> DuroError:
        return kind(detail, workflow_id=str(problem.get("workflow_id", "")),
                    run_id=str(problem.get("run_id", "")),
                    workflow_name=problem.get("workflow_name"))

    return make


def _invalid_payload(detail: str, problem: Mapping[str, Any]) -> DuroError:
    if problem.get("arguments") is True:  # as an embedded client with the code raises
        return WorkflowArgumentsError(detail)
    return SerializationError(detail)


def _update_failed(detail: str, problem: Mapping[str, Any]) -> DuroError:
    cause = problem.get("cause")
    info = (ErrorInfo.from_dict(cause) if isinstance(cause, dict)
            else ErrorInfo(type="Error", message=detail))
    return UpdateFailedError(detail, cause=info)


def _not_pending(detail: str, problem: Mapping[str, Any]) -> DuroError:
    return ApprovalNotPendingError(detail, approval_id=str(problem.get("approval_id", "")),
                                   status=str(problem.get("approval_status", "")))


def _plain(kind: type[DuroError]) -> Callable[[str, Mapping[str, Any]], DuroError]:
    return lambda detail, problem: kind(detail)


ERRORS: dict[str, Callable[[str, Mapping[str, Any]], DuroError]] = {
    # The caller's own request was malformed: as a bad argument is refused embedded.
    "bad_request": _plain(InvalidArgumentError),
    "body_too_large": _plain(InvalidArgumentError),
    "invalid_signature": _plain(AuthenticationError),
    "unauthenticated": _plain(AuthenticationError),
    "forbidden": _plain(PermissionDeniedError),
    "run_not_found": _plain(RunNotFoundError),
    "workflow_not_found": _plain(WorkflowNotFoundError),
    "operation_not_found": _plain(OperationNotFoundError),
    "schedule_not_found": _plain(ScheduleNotFoundError),
    "approval_not_found": _plain(ApprovalNotFoundError),
    "approval_not_pending": _not_pending,
    "workflow_already_started": _started(WorkflowAlreadyStartedError),
    "workflow_id_taken": _started(WorkflowIdTakenError),
    "schedule_already_exists": _plain(ScheduleAlreadyExistsError),
    # Embedded, a retry of a run that did not fail raises a plain DuroError.
    "conflict": _plain(DuroError),
    "not_enabled": _plain(DuroError),
    "update_rejected": _plain(UpdateRejectedError),
    "update_handler_failed": _update_failed,
    "query_timeout": _plain(QueryTimeoutError),
    "query_failed": _plain(QueryError),
    "invalid_payload": _invalid_payload,
    "invalid_argument": _plain(InvalidArgumentError),
    "data_rejected": _plain(DataRejectedError),
    "store_unavailable": _plain(StoreError),
    "engine_error": _plain(DuroError),
}
"""A problem document's ``code`` -> the duro error it stands for (the reverse of the
server's ``PROBLEMS``; a unit test checks every code there is here)."""


_inject: Callable[[dict[str, str]], None] | None = None


def trace_context(headers: dict[str, str]) -> None:
    """Add the current OpenTelemetry span as W3C ``traceparent`` (and ``tracestate``)
    when OpenTelemetry is installed and a span is current: a server with tracing on
    continues the caller's trace."""
    global _inject
    if _inject is None:
        try:
            from opentelemetry import propagate
        except ImportError:
            _inject = _no_context
        else:
            _inject = propagate.inject
    _inject(headers)


def _no_context(headers: dict[str, str]) -> None:
    """Without OpenTelemetry there is no trace to carry."""


def error_of(status: int, body: bytes, what: str) -> DuroError:
    """The duro error of a failed response: by its problem ``code``; else by its status
    (a proxy's own error page has no code)."""
    try:
        problem = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("code"), str):
        detail = str(problem.get("detail", ""))
        make = ERRORS.get(problem["code"])
        if make is not None:
            return make(detail, problem)
        if problem["code"] in ("not_found", "method_not_allowed"):
            return DuroError(f"the server has no route {what}: is it a duro server of "
                             "this version?")
        return DuroError(f"{what} failed ({status} {problem['code']}): {detail}")
    if status == 401:
        return AuthenticationError(f"{what}: the server wants a valid API token")
    if status == 403:
        return PermissionDeniedError(f"{what}: this API token may not do that")
    if status >= 500:
        return ServerUnavailableError(f"{what}: the server answered {status}")
    return DuroError(f"{what}: unexpected answer {status}")


async def patiently(attempt: Callable[[], Awaitable[T]], *, deadline: float | None,
                    patience: float, what: str) -> T:
    """``attempt()`` (one long poll), again while the server does not answer (it
    restarts, a proxy drops the connection): until ``deadline`` (then
    :class:`TimeoutError`, as an embedded client's wait ends) or, without one, until it
    has not answered for ``patience`` seconds (then the
    :class:`~duro.errors.ServerUnavailableError`)."""
    down_since: float | None = None
    while True:
        try:
            return await attempt()
        except ServerUnavailableError as exc:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(f"{what} (the server did not answer: {exc})") from exc
            down_since = now if down_since is None else down_since
            if deadline is None and now - down_since >= patience:
                raise
            await asyncio.sleep(PAUSES[-1])


def segment(value: str, what: str) -> str:
    """An id or name as one path segment, percent-encoded.

    Raises:
        InvalidArgumentError: It holds a ``/``: the server decodes ``%2F`` before
            routing, so no route can reach it (docs/http.md).
    """
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a string, not {type(value).__name__}")
    if "/" in value:
        raise InvalidArgumentError(f"{what} {value[:80]!r} holds a '/': the HTTP API cannot "
                                   "reach it (use a client on the database)")
    if value in (".", ".."):
        # Spelt out: a URL's "." and ".." segments are removed before it is sent.
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("duro's remote client needs httpx, in the 'remote' extra: "
                          "pip install 'duro[remote]'") from exc
    return httpx


class Transport:
    """The HTTP side of a remote client: open once, then requests until closed."""

    def __init__(self, base_url: str, *, token: str | None, timeout: float,
                 http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        """Seconds one request may take."""
        self._given = http
        self._http: httpx.AsyncClient | None = None
        self._errors: tuple[type[BaseException], ...] = ()

    def _headers(self) -> dict[str, str]:
        headers = {} if self._token is None else {"Authorization": f"Bearer {self._token}"}
        trace_context(headers)
        return headers

    @property
    def has_token(self) -> bool:
        """Whether requests carry an API token (the server then knows who calls)."""
        return self._token is not None

    async def open(self) -> None:
        """Make the connection pool (or use the one given)."""
        httpx = _httpx()
        self._errors = (httpx.TransportError,)
        self._connect_error: type[BaseException] = httpx.ConnectError
        self._http = self._given or httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
            follow_redirects=False)

    async def close(self) -> None:
        """Close the pool (not one given by the caller: that is the caller's)."""
        http, self._http = self._http, None
        if http is not None and self._given is None:
            await http.aclose()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise DuroError("the client is not open: use `async with duro.Client(...)` or "
                            "`await client.open()`")
        return self._http

    async def call(self, method: str, path: str, *, body: Any = None,
                   params: Mapping[str, Any] | None = None,
                   headers: Mapping[str, str] | None = None, idempotent: bool = False,
                   timeout: float | None = None,
                   deadline: float | None = None) -> tuple[int, Any]:
        """Send a request; its status and JSON body (None for none). ``deadline``
        (``time.monotonic()``): no attempt lasts past it, none starts after it.

        Raises:
            DuroError: The error the server answered with (:func:`error_of`), or an
                answer that is not a duro server's (a redirect, a page that is not JSON).
            ServerUnavailableError: No answer, after the retries allowed.
        """
        http = self._client()
        what = f"{method} {path}"
        content = None if body is None else orjson.dumps(body)
        sent = {**self._headers(), **(headers or {})}
        if content is not None:
            sent["Content-Type"] = "application/json"
        for attempt in range(ATTEMPTS):
            limit = timeout
            if deadline is not None:
                left = max(0.05, deadline - time.monotonic())
                limit = left if limit is None else min(limit, left)
            extra: dict[str, Any] = {} if limit is None else {"timeout": limit}
            try:
                response = await http.request(method, self.base_url + path, content=content,
                                              params=params, headers=sent, **extra)
                break
            except self._errors as exc:
                pause = PAUSES[min(attempt, len(PAUSES) - 1)]
                retry = (idempotent or isinstance(exc, self._connect_error)) \
                    and attempt < ATTEMPTS - 1 \
                    and (deadline is None or time.monotonic() + pause < deadline)
                if not retry:
                    raise ServerUnavailableError(
                        f"{what}: no answer from {self.base_url} "
                        f"({type(exc).__name__}: {exc or 'no detail'})") from exc
                await asyncio.sleep(pause)
        if response.status_code >= 400:
            raise error_of(response.status_code, response.content, what)
        if 300 <= response.status_code < 400:
            # Not followed: a redirect would send the token and the body elsewhere.
            raise DuroError(f"{what}: the server redirects ({response.status_code}) to "
                            f"{response.headers.get('location', '?')!r}: give the client "
                            "that URL")
        try:
            data = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            raise DuroError(f"{what}: the answer ({response.status_code}, "
                            f"{response.headers.get('content-type', 'no content type')}) is "
                            "not JSON: is it a duro server?") from None
        return response.status_code, data

    @asynccontextmanager
    async def stream(self, path: str, *, params: Mapping[str, Any] | None = None,
                     headers: Mapping[str, str] | None = None
                     ) -> AsyncIterator[AsyncIterator[str]]:
        """A GET whose body is read line by line (Server-Sent Events); a silence longer
        than :data:`_STREAM_SILENCE` is a lost connection.

        Raises:
            DuroError: The error the server answered with.
            ServerUnavailableError: No connection.
        """
        httpx = _httpx()
        http = self._client()
        what = f"GET {path}"
        try:
            async with http.stream("GET", self.base_url + path, params=params,
                                   headers={**self._headers(), **(headers or {})},
                                   timeout=httpx.Timeout(self.timeout,
                                                         read=_STREAM_SILENCE)) as response:
                if response.status_code >= 400:
                    raise error_of(response.status_code, await response.aread(), what)
                yield response.aiter_lines()
        except httpx.TransportError as exc:
            raise ServerUnavailableError(f"{what}: the connection to {self.base_url} failed "
                                         f"({type(exc).__name__}: {exc or 'no detail'})"
                                         ) from exc
