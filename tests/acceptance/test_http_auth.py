"""API tokens on a real ``duro serve --auth`` (issue 16, item 3), both stores: every
scoped route refuses a request without a token, with a revoked or forged one (401),
with a token whose scope is too low (403), and a token of another namespace finds
nothing (404, or an empty listing); none of these changes anything in the store. The
public routes need no token; tokens of the right scope and namespace work."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import duro
from duro.server._auth import TOKEN_CACHE_SECONDS
from duro.server._table import ROUTES
from duro.store import RunRecord
from tests.acceptance.serving import DURO_SRC, problem, serve_http
from tests.conftest import run

RUN, SCHEDULE, NS = "auth-run", "auth-schedule", "acme"

# A request each scoped route can act on (bodies valid enough to reach the lookup): the
# run RUN and the schedule SCHEDULE of namespace NS.
_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/runs"): {"workflow": "order_app.order", "id": "auth-new", "args": ["a", 1]},
    ("POST", "/v1/signal-with-start"): {"workflow": "order_app.order", "id": RUN,
                                        "signal": "approve", "payload": "x",
                                        "args": ["a", 1]},
    ("POST", "/v1/update-with-start"): {"workflow": "order_app.order", "id": RUN,
                                        "update": "add", "update_args": ["b", 1],
                                        "args": ["a", 1], "timeout": 0.2},
    ("POST", "/v1/runs/{workflow_id}/signals/{name}"): {"payload": "x"},
    ("POST", "/v1/runs/{workflow_id}/updates/{name}"): {"args": ["b", 1], "timeout": 0.2},
    ("POST", "/v1/runs/{workflow_id}/queries/{name}"): {"timeout": 0.2},
    ("POST", "/v1/runs/{workflow_id}/terminate"): {"reason": "no"},
    ("POST", "/v1/runs/{workflow_id}/reset"): {"to": 1},
    ("POST", "/v1/runs/{workflow_id}/fork"): {"id": "auth-fork"},
    ("POST", "/v1/schedules"): {"id": "auth-other", "workflow": "order_app.order",
                                "every": 3600, "paused": True, "args": ["a", 1]},
    ("POST", "/v1/schedules/{schedule_id}/backfill"): {"start": 0, "end": 3600},
    ("PATCH", "/v1/schedules/{schedule_id}"): {"overlap": "allow_all"},
    ("POST", "/v1/steps/{token}/complete"): {"result": 1},
    ("POST", "/v1/steps/{token}/fail"): {"message": "no"},
    ("POST", "/v1/steps/{token}/heartbeat"): {"details": 1},
    ("POST", "/v1/budgets/{key}/limit"): {"usd": 5},
}
# A completion token of RUN's first step attempt (its run id is known once it is made).
STEP_TOKEN = ["unknown.1.1"]
# Routes that make something new in the caller's namespace (not about RUN/SCHEDULE):
# another namespace's token may use them, in its own namespace.
_CREATES = {("POST", "/v1/runs"), ("POST", "/v1/signal-with-start"),
            ("POST", "/v1/update-with-start"), ("POST", "/v1/schedules")}
# Listings (and stats): another namespace sees none of NS's.
_LISTINGS = {("GET", "/v1/runs"), ("GET", "/v1/schedules"), ("GET", "/v1/stats"),
             # The step cache of the token's namespace: another's sees and clears none.
             ("GET", "/v1/cache"), ("DELETE", "/v1/cache"), ("GET", "/v1/approvals"),
             ("GET", "/v1/budgets")}
# Deployment-wide (workers, queue limits and the process's metrics are not a namespace's):
# readable by all.
_DEPLOYMENT = {("GET", "/v1/workers"), ("GET", "/v1/queues"), ("GET", "/metrics")}
_QUERY = {("GET", "/v1/runs/{workflow_id}/result"): {"wait": "0"},
          ("GET", "/v1/runs/{workflow_id}/queries/{name}"): {"timeout": "0.2"}}


def _url(path: str) -> str:
    return (path.replace("{workflow_id}", RUN).replace("{schedule_id}", SCHEDULE)
            .replace("{token}", STEP_TOKEN[0])
            .replace("{key}", "progress").replace("{name}", "approve" if "signals" in path else
                     "add" if "updates" in path else "total"))


def _request(http: httpx.Client, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = _BODIES.get((method, path))
    if path.endswith(("/events", "/stream")):  # a live stream: its first answer is enough
        with http.stream(method, _url(path), headers=headers, timeout=10) as response:
            response.read() if response.status_code != 200 else None
            return response
    return http.request(method, _url(path), headers=headers, params=_QUERY.get((method, path)),
                        content=None if body is None else json.dumps(body))


async def _store_state(url: str) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was: runs (status, history), their
    inboxes, schedules, tokens."""
    async with duro.Client(url, namespace=None) as client:
        runs = []
        for info in await client.list(limit=1000):
            record: RunRecord | None = await client.store.get_run(info.workflow_id,
                                                                  info.run_id)
            assert record is not None
            inbox = await client.store.read_inbox(info.run_id)
            runs.append((info.workflow_id, info.run_id, info.status.value,
                         record.history_len, len(inbox)))
        schedules = [s.to_json() for s in await client.schedules.list()]
        tokens = [t.to_json() for t in await client.tokens.list()]
    return sorted(runs), schedules, tokens


def test_every_scoped_route_refuses_what_its_token_does_not_allow(any_db_url: str) -> None:
    async def tokens() -> dict[str, str]:
        async with duro.Client(any_db_url) as client:
            made = {name: (await client.tokens.create(name, scope=scope, namespace=ns))[0]
                    for name, scope, ns in [("admin", "admin", NS), ("write", "write", NS),
                                            ("read", "read", NS), ("revoked", "admin", NS),
                                            ("other", "admin", "other")]}
            listed = {t.name: t.token_id for t in await client.tokens.list()}
            await client.tokens.revoke(listed["revoked"])
            return made

    token = run(tokens())
    with serve_http(any_db_url, "order_app", worker=False, args=["--auth"]) as (http, _):
        # Public: no token needed.
        for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):  # (and /v1/callbacks:
            # signed instead, test_rpc.py)
            assert http.get(path).status_code == 200, path
        # The right token works: NS's admin makes the run and the schedule.
        admin = {"Authorization": f"Bearer {token['admin']}"}
        made = http.post("/v1/runs", headers=admin, json={
            "workflow": "order_app.order", "id": RUN, "args": ["apple", 1]})
        assert made.status_code == 202, made.text
        STEP_TOKEN[0] = f"{made.json()['run_id']}.1.1"
        assert http.post("/v1/schedules", headers=admin, json={
            "id": SCHEDULE, "workflow": "order_app.order", "every": 3600, "paused": True,
            "args": ["a", 1]}).status_code == 201
        assert http.get(f"/v1/runs/{RUN}", headers=admin).json()["namespace"] == NS
        before = run(_store_state(any_db_url))

        scoped = [r for r in ROUTES if r.scope is not None]
        assert len(scoped) >= 25
        forged = re.sub(r".$", lambda m: "A" if m.group() != "A" else "B", token["admin"])
        for route in scoped:
            key, where = (route.method, route.path), f"{route.method} {route.path}"
            for bad in (None, token["revoked"], forged, "not-a-token"):
                response = _request(http, route.method, route.path, bad)
                detail = problem(response, 401, "unauthenticated")
                assert response.headers["www-authenticate"].startswith("Bearer"), where
                assert "revoked" not in detail and "expired" not in detail
            if route.scope != "read":
                low = token["read"] if route.scope == "write" else token["write"]
                problem(_request(http, route.method, route.path, low), 403, "forbidden")
            if key in _CREATES or key in _DEPLOYMENT:
                continue
            response = _request(http, route.method, route.path, token["other"])
            if key in _LISTINGS:
                assert response.status_code == 200, (where, response.text)
                assert not response.json().get("runs") and \
                    not response.json().get("schedules") and \
                    not response.json().get("workflows") and \
                    not response.json().get("approvals") and \
                    not response.json().get("budgets"), where
            elif "/v1/budgets/" in route.path:  # a key with no spend in its namespace
                problem(response, 400, "invalid_argument")
            else:
                code = "schedule_not_found" if "schedule_id" in route.path \
                    else "approval_not_found" if "approval_id" in route.path \
                    else "operation_not_found" if "/operations/" in route.path \
                    else "run_not_found"
                problem(response, 404, code)
        assert run(_store_state(any_db_url)) == before

        # The other namespace's own: it starts a run there, which NS does not see.
        other = {"Authorization": f"Bearer {token['other']}"}
        theirs = http.post("/v1/runs", headers=other, json={
            "workflow": "order_app.order", "id": "auth-theirs", "args": ["b", 2]})
        assert theirs.status_code == 202
        problem(http.get("/v1/runs/auth-theirs", headers=admin), 404, "run_not_found")
        # An id taken in another namespace is refused without saying whose.
        taken = http.post("/v1/runs", headers=other, json={
            "workflow": "order_app.order", "id": RUN, "args": ["b", 2]})
        assert NS not in problem(taken, 409, "workflow_already_started")
        # Each scope does what it allows.
        write = {"Authorization": f"Bearer {token['write']}"}
        assert http.post(f"/v1/runs/{RUN}/signals/approve", headers=write,
                         json={"payload": "ann"}).status_code == 202
        read = {"Authorization": f"Bearer {token['read']}"}
        listed = http.get("/v1/runs", headers=read).json()["runs"]
        assert [r["workflow_id"] for r in listed] == [RUN]


@pytest.mark.parametrize("flags, said", [
    ([], "API tokens required"),  # off loopback: tokens unless told otherwise
    (["--no-auth"], "warning: serving 0.0.0.0 without API tokens"),
])
def test_off_loopback_tokens_are_required_unless_refused_in_so_many_words(
        tmp_path: Path, flags: list[str], said: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DURO_DB", "PYTHONPATH")}
    env["PYTHONPATH"] = str(DURO_SRC)
    proc = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", f"sqlite:///{tmp_path}/a.db", "serve",
         "--host", "0.0.0.0", "--port", "0", *flags], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while not lines or "duro serve ready" not in lines[-1]:
            line = proc.stdout.readline()
            assert line, "".join(lines)  # it exited without serving
            lines.append(line)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert said in "".join(lines), lines


def test_a_token_revoked_while_serving_is_refused_within_the_cache_bound(
        any_db_url: str) -> None:
    """A server trusts a token it verified for TOKEN_CACHE_SECONDS (server/_auth.py): a
    revocation made meanwhile by another process takes effect at most that long after.
    Any request sent later than that must be refused."""
    async def make() -> tuple[str, str]:
        async with duro.Client(any_db_url) as client:
            secret, info = await client.tokens.create("soon revoked", scope="read")
            return secret, info.token_id

    async def revoke(token_id: str) -> None:
        async with duro.Client(any_db_url) as client:
            await client.tokens.revoke(token_id)

    secret, token_id = run(make())
    headers = {"Authorization": f"Bearer {secret}"}
    with serve_http(any_db_url, worker=False, args=["--auth"]) as (http, _):
        for _ in range(2):  # verified, then (within the bound) taken from the cache
            assert http.get("/v1/runs", headers=headers).status_code == 200
        run(revoke(token_id))
        revoked = time.monotonic()
        while True:
            sent = time.monotonic()
            response = http.get("/v1/runs", headers=headers)
            if response.status_code == 401:
                break
            assert response.status_code == 200, response.text
            assert sent - revoked < TOKEN_CACHE_SECONDS, "accepted past the bound"
            time.sleep(0.05)
        problem(response, 401, "unauthenticated")


def test_the_bearer_scheme_is_read_in_any_case(tmp_path: Path) -> None:
    """RFC 9110: an authentication scheme is case-insensitive (``BEARER`` was a 401)."""
    db_url = f"sqlite:///{tmp_path}/a.db"

    async def make() -> str:
        async with duro.Client(db_url) as client:
            return (await client.tokens.create("any case", scope="read"))[0]

    secret = run(make())
    with serve_http(db_url, worker=False, args=["--auth"]) as (http, _):
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            response = http.get("/v1/runs", headers={"Authorization": f"{scheme} {secret}"})
            assert response.status_code == 200, (scheme, response.text)
        for header in (secret, f"Basic {secret}", f"Bearer{secret}", "Bearer"):
            problem(http.get("/v1/runs", headers={"Authorization": header}), 401,
                    "unauthenticated")


def test_web_pages_of_other_sites_can_neither_act_nor_read_through_a_loopback_server(
        tmp_path: Path) -> None:
    """Without tokens (loopback), only the address guards the API: a page of another site
    must not make the browser change anything (CSRF: its requests carry its ``Origin``),
    and must not read through a name of its own resolving here (DNS rebinding: a
    ``Host`` the server does not answer to)."""
    db_url = f"sqlite:///{tmp_path}/a.db"
    with serve_http(db_url, "order_app", worker=False,
                    args=["--allowed-host", "duro.internal"]) as (http, served):
        port = served.url.rsplit(":", 1)[1]
        start = {"workflow": "order_app.order", "id": "csrf", "args": ["a", 1]}
        for origin in ("https://evil.example", "null", f"http://localhost:{port}"):
            problem(http.post("/v1/runs", json=start, headers={"Origin": origin}), 403,
                    "forbidden")
            problem(http.post("/v1/runs", content=b"", headers={
                "Origin": origin, "Content-Type": "text/plain"}), 403, "forbidden")
        problem(http.get("/v1/runs/csrf"), 404, "run_not_found")  # nothing was stored
        same = {"Origin": served.url}  # the UI's own page
        assert http.post("/v1/runs", json=start, headers=same).status_code == 202
        assert http.get("/v1/runs", headers={"Origin": "https://evil.example"}) \
            .status_code == 200  # a read it cannot see (no CORS): not refused
        for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.2:{port}"):
            problem(http.get("/v1/runs", headers={"Host": host}), 403, "forbidden")
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}",
                     f"duro.internal:{port}", "DURO.INTERNAL"):
            assert http.get("/v1/runs", headers={"Host": host}).status_code == 200, host
        # The UI's page takes any query string (a shared link's ?utm_source=).
        assert http.get("/", params={"utm_source": "chat"}).status_code == 200
        problem(http.get("/v1/runs", params={"utm_source": "chat"}), 400, "bad_request")
