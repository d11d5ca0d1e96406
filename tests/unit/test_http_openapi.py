"""The OpenAPI document is made from the route table: every route the application serves
is in it (with its path parameters and scope), and every schema it names exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.routing import Route

from duro.client import Client
from duro.server import create_app
from duro.server._openapi import openapi
from duro.server._table import ROUTES


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_every_served_route_is_in_the_document(tmp_path: Path) -> None:
    app = create_app(Client(f"sqlite:///{tmp_path}/x.db"))
    spec = openapi(ROUTES, version="test")
    served = {(r.path, method) for r in app.routes if isinstance(r, Route)
              for method in (r.methods or ()) if method != "HEAD"}
    documented = {(path, method.upper()) for path, ops in spec["paths"].items()
                  for method in ops}
    assert served == documented
    assert len(served) == len(ROUTES)  # one record a (path, method): no route twice
    for path, ops in spec["paths"].items():
        for op in ops.values():
            in_path = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert in_path == set(re.findall(r"{(\w+)}", path))
            assert "default" in op["responses"]  # the problem document
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert len({op["operationId"] for ops in spec["paths"].values()
                for op in ops.values()}) == len(ROUTES)


def test_every_route_says_its_scope() -> None:
    for route in ROUTES:
        if route.method == "GET":
            assert route.scope in (None, "read"), route.path
        elif route.path.endswith("/queries/{name}"):
            assert route.scope == "read"  # a query changes nothing, whatever its method
        elif route.path == "/v1/callbacks":
            assert route.scope is None  # a callee's HMAC signature stands for a token
        else:
            assert route.scope in ("write", "admin"), route.path
    admin = {(r.method, r.path.rsplit("/", 1)[-1]) for r in ROUTES if r.scope == "admin"}
    assert {("POST", "terminate"), ("POST", "reset"), ("POST", "fork"),
            ("DELETE", "{schedule_id}")} <= admin
    public = {r.path for r in ROUTES if r.scope is None}
    assert public == {"/healthz", "/readyz", "/openapi.json", "/docs", "/v1/callbacks"}
