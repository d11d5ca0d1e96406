"""The HTTP API over a :class:`duro.Client`: an ASGI application (Starlette).

Every route talks to the store through the client only, never to a worker: the same
application serves a process with the workflows' code or without it. The routes are
declared once, in ``_table.py``; each request passes through one wrapper
(:func:`create_app`'s ``endpoint``), the place where a route's scope is checked. Errors
are ``application/problem+json`` with a stable ``code`` per duro error type
(``_problems.py``); input a caller can get wrong is a 4xx, never a 500.

Modules: ``_runs.py`` (runs), ``_events.py`` (live history as Server-Sent Events),
``_schedules.py`` (schedules, queues, workers), ``_openapi.py`` (the description).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from duro._checks import check_id
from duro.client import Client
from duro.errors import PermissionDeniedError

if TYPE_CHECKING:
    from duro.metrics import Metrics
from duro.server._auth import TokenCache, authenticate
from duro.server._problems import BadRequest, problem, problem_document, raw_body
from duro.server._routes import Api, ApiRoute
from duro.server._runs import MAX_WAIT
from duro.server._table import ROUTES
from duro.server._webhooks import WebhookAuth, check_webhooks, verify

__all__ = ["MAX_WAIT", "create_app", "stop_streams"]

log = logging.getLogger("duro.server")


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _host_name(host: str) -> str:
    """A ``Host`` header's name, without its port, lowercase (``[::1]:8233`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _check_caller(request: Request, hosts: frozenset[str] | None) -> None:
    """Refuse what a web page in a browser could make it send: a request for a host name
    this server does not answer to (``hosts``; None: any), the mark of DNS rebinding
    (another site's name resolving to this address, to read and act through it), and a
    state-changing request from a page of another origin (cross-site request forgery: a
    form, a fetch without CORS). Browsers send ``Origin`` on every such request; the
    clients, the CLI, ``curl`` and webhook providers send none.

    Raises:
        PermissionDeniedError: Either.
    """
    host = request.headers.get("host", "")
    if hosts is not None and _host_name(host) not in hosts:
        raise PermissionDeniedError(
            f"this server does not answer to host {host[:100]!r} (DNS rebinding?): serve "
            "with --allowed-host NAME to add it")
    origin = request.headers.get("origin")
    if origin is not None and request.method not in _SAFE_METHODS \
            and origin.split("://", 1)[-1].lower() != host.lower():
        raise PermissionDeniedError(f"a request from a page of another origin "
                                    f"({origin[:100]!r}) may not change anything here")


def _endpoint(route: ApiRoute, api: Api, webhook: WebhookAuth | None,
              tokens: TokenCache | None, traced: bool = False,
              hosts: frozenset[str] | None = None) -> Callable[[Request], Awaitable[Response]]:
    """The one wrapper every request passes through, in this order: who calls (a webhook
    route's signature, checked on the raw body; else, with ``tokens`` (None: no auth),
    the API token, whose namespace the request then acts in), query parameters the route
    does not take are refused (a misspelt filter must not list everything), and every
    failure becomes a problem document."""
    handler, known, prefix = route.handler, route.query_names, route.prefix_param
    scope = route.scope

    async def endpoint(request: Request) -> Response:
        try:
            _check_caller(request, hosts)
            called = api
            if webhook is not None:
                # The raw bytes, as signed (Starlette keeps them for the handler to read).
                verify(webhook, await raw_body(request), request.headers)
                request.state.webhook = webhook
                if tokens is not None:
                    called = api.scoped(webhook.namespace)
            elif tokens is not None and scope is not None:
                token = await authenticate(request, tokens, scope)
                request.state.token = token  # who acts (an approval's decider)
                called = api.scoped(token.namespace)
            if request.scope["query_string"] and scope is not None:
                # (A public route's page or file takes any: a link with ?utm_source=.)
                unknown = [k for k in request.query_params
                           if k not in known and not (prefix and k.startswith(prefix))]
                if unknown:
                    raise BadRequest(f"unknown query parameter {unknown[0][:80]!r}: "
                                     f"{route.path} takes {', '.join(sorted(known)) or 'none'}")
            if traced and "traceparent" in request.headers:
                from duro.tracing._ids import continued

                with continued(request.headers):  # the caller's trace goes on in here
                    return await handler(request, called)
            return await handler(request, called)
        except ClientDisconnect:
            # Gone before its body was all sent: nobody to answer, nothing to log (on a
            # webhook route anyone could fill the log so).
            return Response(status_code=400)
        except Exception as exc:  # every failure is a problem document
            response = problem(exc)
            if response.status_code == 500:
                log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            return response

    return endpoint


async def _not_routed(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405, as problem documents like every other error."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request")
    detail = (f"no route {request.method} {request.url.path}" if status in (404, 405)
              else str(getattr(exc, "detail", "")))
    return Response(orjson.dumps(problem_document(status, code, detail)), status_code=status,
                    media_type="application/problem+json",
                    headers=getattr(exc, "headers", None))


def create_app(client: Client, *, own_client: bool = False, auth: bool = False,
               webhooks: Mapping[str, WebhookAuth] | None = None,
               metrics: Metrics | None = None, tracing: bool = False,
               expose: Iterable[str] = (), callback_secret: bytes | None = None,
               allowed_hosts: Iterable[str] | None = None,
               ) -> Starlette:
    """The API as an ASGI application over ``client`` (opened by the application's
    lifespan when ``own_client``; else the caller opens and closes it). Mount it in your
    own ASGI app, or serve it with ``duro serve``.

    Its routes are listed at ``GET /openapi.json`` (OpenAPI 3.1) and ``GET /docs``; see
    docs/http.md. Event streams and long polls end when :func:`stop_streams` is called
    (``duro serve`` does at SIGTERM): call it before your server's graceful shutdown, or
    give the server a shutdown timeout.

    With ``auth``, every route but the public ones (``/healthz``, ``/readyz``,
    ``/openapi.json``, ``/docs``, and the web UI's page ``/`` and files ``/ui/...``,
    which hold no data: docs/ui.md) needs ``Authorization: Bearer <token>``, a token made
    with ``client.tokens.create`` / ``duro token create`` whose scope allows the route's
    (401 ``unauthenticated``, 403 ``forbidden``), and acts in the token's namespace only
    (another namespace's runs are not found). A token found valid is trusted for one
    second before it is read again: a revoked token is refused at most a second after
    its revocation (expiry is checked at every request). Without ``auth``, requests act
    in ``client``'s namespace: serve such an app on loopback only, or behind your own
    authentication.

    ``webhooks`` guards routes by name (``"signal-with-start"``, ``"signal"``,
    ``"start"``: :data:`~duro.server.WEBHOOK_ROUTES`) with a provider's HMAC signature
    (:class:`~duro.server.WebhookAuth`): a request whose signature does not match is
    refused (401 ``invalid_signature``) before its body is read as JSON, and stores
    nothing.

    ``metrics`` (a :class:`duro.metrics.Metrics`, also given to ``client`` as an
    interceptor) is served at ``GET /metrics`` (scope read) in the Prometheus text format;
    without it, that route answers 404 ``not_enabled``. With ``tracing`` (give ``client``
    a :class:`duro.tracing.TracingInterceptor`), a request's W3C ``traceparent`` header
    is the parent of the spans of what it does: a caller's trace continues into the
    run and its steps.

    Durable RPC (docs/rpc.md): workflows declared with ``expose=True``, and those named in
    ``expose``, are served as operations at ``/v1/operations/{name}``; with
    ``callback_secret``, ``POST /v1/callbacks`` takes the signed outcomes of this
    deployment's ``duro.call`` calls (without it, that route answers 404 ``not_enabled``).

    Requests from web pages: a state-changing request whose ``Origin`` is not the server's
    own is refused (403 ``forbidden``: cross-site request forgery, which matters without
    ``auth``, where nothing but the address guards the API); with ``allowed_hosts`` (host
    names, without ports), so is any request whose ``Host`` is none of them (DNS
    rebinding: ``duro serve`` on loopback without tokens answers only to ``localhost``,
    ``127.0.0.1``, ``::1`` and the names ``--allowed-host`` adds).

    Raises:
        InvalidArgumentError: ``webhooks`` names an unknown route, or ``expose`` a name
            that is not one.
    """
    guarded = check_webhooks(webhooks)
    hosts = (None if allowed_hosts is None
             else frozenset(_host_name(h) for h in allowed_hosts))
    api = Api(client=client, metrics=metrics, root=client,
              exposed=frozenset(check_id(n, "operation name", limit=200) for n in expose),
              callback_secret=callback_secret or None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if own_client:
            await client.open()
        try:
            yield
        finally:
            api.stopping.set()
            if own_client:
                await client.close()

    tokens = TokenCache(client) if auth else None
    endpoints = [(r, _endpoint(r, api, guarded.get(r.path) if r.method == "POST" else None,
                               tokens, tracing, hosts)) for r in ROUTES]
    app = _App(routes=[Route(r.path, endpoint, methods=[r.method]) for r, endpoint in endpoints],
               exception_handlers={HTTPException: _not_routed}, lifespan=lifespan)
    app.static = {(r.method, r.path): endpoint for r, endpoint in endpoints if "{" not in r.path}
    app.state.duro_api = api
    return app


_STACK = Starlette.build_middleware_stack
_CALL = Starlette.__call__


class _App(Starlette):
    """Starlette, with a shortcut for the routes without path parameters (``POST
    /v1/runs``, ``POST /v1/signal-with-start``...): a request for one of them goes
    straight to its endpoint, by a dictionary lookup, instead of through Starlette's two
    exception middlewares and its router's walk over the route table. That is the same
    endpoint, given the same ``Request``: every failure is already a problem document
    there (``_endpoint``), so the middlewares had nothing to catch. Measured with
    the ASGI app driven in process: ~20% of the event loop's CPU per start
    (docs/benchmarks.md).

    Requests under a mount (a ``root_path``), once middleware is added to the app
    (``add_middleware``), or when instrumentation wraps Starlette otherwise (the app's
    ``build_middleware_stack`` replaced, as OpenTelemetry's instrumentors do, or
    Starlette's ``__call__`` patched) take Starlette's way: the shortcut must not skip
    any of them."""

    static: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]]
    """The endpoints of the routes without path parameters, by (method, path)."""

    def _plain(self) -> bool:
        """Nothing wraps the app: no added middleware, no replaced stack builder, no
        patched Starlette."""
        return (not self.user_middleware and "build_middleware_stack" not in vars(self)
                and type(self).build_middleware_stack is _STACK
                and Starlette.__call__ is _CALL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path") and self._plain():
            endpoint = self.static.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self
                scope["path_params"] = {}
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def stop_streams(app: Starlette) -> None:
    """End the application's event streams and long polls now (they answer at once: a
    202 for a long poll, the end of the stream for events; the callers reconnect), so a
    graceful shutdown need not wait for them."""
    api: Api = app.state.duro_api
    api.stopping.set()
