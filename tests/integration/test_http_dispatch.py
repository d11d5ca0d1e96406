"""The HTTP app's shortcut for the routes without path parameters (server/_app.py,
``_App``): it answers exactly as Starlette's way does (the same statuses, headers and
problem documents), and steps aside under a mount and once middleware is added, so
neither is skipped. The real application over a real SQLite store, called in process
through httpx's ASGI transport (the served app is covered by tests/acceptance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from duro.client import Client
from duro.server import create_app
from tests.conftest import run

# (method, path, body, headers): a start, the same start again, a start by
# Idempotency-Key, bad input of several kinds, and a static GET.
_REQUESTS: list[tuple[str, str, Any, dict[str, str]]] = [
    ("POST", "/v1/runs", {"workflow": "shop.order", "id": "o-1", "args": [1]}, {}),
    ("POST", "/v1/runs", {"workflow": "shop.order", "id": "o-1", "args": [1]}, {}),
    ("POST", "/v1/runs", {"workflow": "shop.order", "args": [2]}, {"Idempotency-Key": "k-1"}),
    ("POST", "/v1/runs", {"workflow": "shop.order", "id": "o-2", "colour": 1}, {}),
    ("POST", "/v1/runs", {"workflow": 5}, {}),
    ("POST", "/v1/runs", "not an object", {}),
    ("POST", "/v1/runs?verbose=1", {"workflow": "shop.order", "id": "o-3"}, {}),
    ("GET", "/v1/runs", None, {}),
    ("PUT", "/v1/runs", {}, {}),
]


class _Tag(BaseHTTPMiddleware):
    """Middleware a user adds: it must see every request."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-tagged"] = "yes"
        return response


def _comparable(response: httpx.Response, prefix: str) -> tuple[int, dict[str, str], Any]:
    """A response without what differs from one database to another (run ids), or
    under a mount (the path a 404 or 405 names, and so the body's length)."""
    headers = {k: v for k, v in response.headers.items()
               if k not in ("x-tagged", "content-length")}
    body = response.json()
    if isinstance(body, dict):
        body.pop("run_id", None)
        if prefix and "detail" in body:
            body["detail"] = body["detail"].replace(f" {prefix}/", " /")
    if isinstance(body, dict) and "runs" in body:
        body = sorted(r["workflow_id"] for r in body["runs"])
    return response.status_code, headers, body


async def _answers(db: str, shape: str) -> list[tuple[int, dict[str, str], Any]]:
    async with Client(db) as client:
        app: Any = create_app(client)
        prefix = ""
        if shape == "middleware":
            app.add_middleware(_Tag)
        elif shape == "instrumented":
            # As OpenTelemetry's Starlette/FastAPI instrumentors do: the app's own stack
            # builder replaced, wrapping what Starlette builds.
            build = app.build_middleware_stack

            def wrapped() -> Any:
                return _Tag(build())

            app.build_middleware_stack = wrapped
        elif shape == "mounted":
            app, prefix = Starlette(routes=[Mount("/duro", app=app)]), "/duro"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            out = []
            for method, path, body, headers in _REQUESTS:
                response = await http.request(method, prefix + path, json=body,
                                              headers=headers)
                assert (response.headers.get("x-tagged") == "yes") == (
                    shape in ("middleware", "instrumented"))
                out.append(_comparable(response, prefix))
            return out


def test_the_shortcut_answers_as_starlette_does(tmp_path: Path) -> None:
    direct = run(_answers(f"sqlite:///{tmp_path}/a.db", "plain"))
    assert [status for status, _, _ in direct] == [202, 202, 202, 400, 400, 400, 400, 200, 405]
    assert direct[0] == direct[1]  # the same id: the same run
    assert direct[3][1]["content-type"] == "application/problem+json"
    # Through Starlette's router (middleware added) and under a mount: the same answers.
    assert run(_answers(f"sqlite:///{tmp_path}/b.db", "middleware")) == direct
    assert run(_answers(f"sqlite:///{tmp_path}/c.db", "mounted")) == direct
    assert run(_answers(f"sqlite:///{tmp_path}/d.db", "instrumented")) == direct
