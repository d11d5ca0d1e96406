"""schemathesis against ``/openapi.json`` of a real ``duro serve`` (both stores): requests
generated from the document (valid and invalid ones) never get a 5xx, and every
response matches the document (status, media type, body schema).

The server runs no worker (a start by any name is stored, so the generated starts
succeed); waits are cut to a fraction of a second so that the run stays short; the
live event stream is left out (it follows a run until it ends: test_http_routes.py
covers it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.acceptance.serving import serve_http  # noqa: E402
from tests.conftest import drop_schema  # noqa: E402

_EXAMPLES = {"sqlite": 40, "postgres": 15}
"""Requests generated per operation and mode (about 20 s in all for SQLite, 10 s for
PostgreSQL: it refuses text SQLite takes, such as NUL characters)."""
_WAIT = 0.2
"""Seconds any generated wait is cut to."""


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                                 marks=pytest.mark.postgres)])
def base_url(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster = None if request.param == "sqlite" else request.getfixturevalue("pg_cluster")
    db = (f"sqlite:///{tmp_path_factory.mktemp('schema') / 'duro.db'}" if cluster is None
          else cluster.fresh_url())
    with serve_http(db, "order_app", "http_app", worker=False) as (http, _):
        yield str(http.base_url).rstrip("/")
    if cluster is not None:
        drop_schema(cluster, db)


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, but the one a query may get when no worker answers it in time (a run of
    a workflow this server has no code for: generated starts make those)."""
    if response.status_code >= 500:
        body = response.json() if "json" in response.headers.get(
            "content-type", [""])[0] else {}
        assert body.get("code") == "query_timeout", (response.status_code, response.text)
    return None


def _bounded(case: Any) -> None:
    """Cut the waits a generated request asks for (a long-poll, an update's or a
    query's timeout), and give updates and queries a short one where they have none
    (this server runs no worker: they would wait for the default, up to a minute)."""
    path = case.operation.path
    if case.method == "POST" and ("update" in path or "/queries/" in path):
        if not isinstance(case.body, dict):
            case.body = {}
        case.body.setdefault("timeout", _WAIT)
    if case.method == "GET" and "/queries/" in path:
        case.query = {**(case.query or {}), "timeout": str(_WAIT)}
    for params in (case.query, case.body):
        if isinstance(params, dict):
            for key in ("wait", "timeout"):
                value = params.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    params[key] = min(value, _WAIT)
                elif isinstance(value, str):
                    params[key] = str(_WAIT)


_CHECKS = [no_server_error, status_code_conformance, content_type_conformance,
           response_schema_conformance]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_5xx_and_every_response_matches_the_document(base_url: str, mode: str,
                                                       request: pytest.FixtureRequest) -> None:
    examples = _EXAMPLES["postgres" if "postgres" in request.node.name else "sqlite"]
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 25
    for operation in operations:
        if operation.path.endswith(("/events", "/stream")):  # live: they may not end
            continue
        strategy = operation.as_strategy(schemathesis.GenerationMode(mode))

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def call(case: Any) -> None:
            _bounded(case)
            case.call_and_validate(checks=_CHECKS, timeout=30)

        try:
            call()
        except Unsatisfiable:
            assert mode == "negative"  # nothing to get wrong (no parameters, no body)
