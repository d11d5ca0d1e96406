"""The shape of a route: what the one route table (``_table.py``) declares for each, and
what every handler is given.

A route's record says everything that is known of it: the handler, the scope a caller
needs (``read``, ``write``, ``admin``; None for the unauthenticated probes and the
API's own description), and what the OpenAPI document says of it (parameters, body,
responses). The application and the document are both made from the table, so they
cannot drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from duro.client import Client

if TYPE_CHECKING:
    from duro.metrics import Metrics

__all__ = ["Api", "ApiRoute", "Handler", "Param", "Scope"]

Scope = Literal["read", "write", "admin"]
"""What a caller must be allowed to do to use a route: look (``read``), start and
message runs (``write``), or act as an operator (``admin``: terminate, reset, delete)."""


@dataclass(frozen=True, kw_only=True)
class Api:
    """What every handler is given: the client (of the request's namespace), and the
    event set when the server stops (long-polls and event streams end then instead of
    holding the shutdown)."""

    client: Client
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    views: dict[str, Api] = field(default_factory=dict)
    """The Api of each namespace a request reached, made once (namespaces are few: those
    of the tokens and webhooks)."""
    metrics: Metrics | None = None
    """The server's metrics (``/metrics``), when it keeps them."""
    root: Client | None = None
    """The client the server was made with (deployment-wide reads: metrics' gauges);
    None in a view: its root's."""
    exposed: frozenset[str] = frozenset()
    """Operations exposed by name (``duro serve --expose``), besides the workflows
    declared with ``expose=True`` (docs/rpc.md)."""
    callback_secret: bytes | None = field(default=None, repr=False)
    """The secret ``POST /v1/callbacks`` checks signatures with (None: callbacks off)."""

    def scoped(self, namespace: str) -> Api:
        """The Api whose client works in ``namespace`` (a view of this one's client)."""
        view = self.views.get(namespace)
        if view is None:
            view = Api(client=self.client.with_namespace(namespace), stopping=self.stopping,
                       metrics=self.metrics, root=self.root or self.client,
                       exposed=self.exposed, callback_secret=self.callback_secret)
            self.views[namespace] = view
        return view


Handler = Callable[[Request, Api], Awaitable[Response]]


@dataclass(frozen=True, kw_only=True)
class Param:
    """A query or header parameter of a route (path parameters come from its path)."""

    name: str
    schema: Mapping[str, Any]
    description: str
    where: Literal["query", "header"] = "query"


@dataclass(frozen=True, kw_only=True)
class ApiRoute:
    """One route: its method and path, handler and scope, and its OpenAPI description."""

    method: str
    path: str
    handler: Handler
    scope: Scope | None
    """None: public (``/healthz``, ``/readyz``, ``/openapi.json``, ``/docs``)."""
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    prefix_param: str | None = None
    """A family of query parameters named ``<prefix>.<key>`` (the search attributes of a
    listing): documented in the description, not one by one."""
    body: str | None = None
    """The schema (in ``components.schemas``) of the JSON body, if it takes one."""
    responses: Mapping[int, str | None] = field(default_factory=dict)
    """Status -> the schema of its body (None: no body). Errors are the default
    response: a problem document."""
    media: str = "application/json"
    """The media type of the success responses."""
    description: str = ""

    @property
    def operation_id(self) -> str:
        """The handler's name without its underscore: ``start``, ``list_runs``..."""
        return self.handler.__name__.lstrip("_")

    @property
    def query_names(self) -> frozenset[str]:
        """The query parameters the route takes (any other is refused)."""
        return frozenset(p.name for p in self.params if p.where == "query")
