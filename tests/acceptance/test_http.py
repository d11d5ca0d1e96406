"""``duro serve`` (issue 16, first slice): a real server process on a free loopback port,
real HTTP (httpx), both stores. Start (202, Location, idempotent by id or
Idempotency-Key), signal, signal-with-start, run and long-polled result, problem+json
errors that store nothing, graceful SIGTERM (API tokens: test_http_auth.py)."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.acceptance.serving import Served, problem, serve_http


@pytest.fixture
def server(any_db_url: str) -> Iterator[tuple[httpx.Client, Served]]:
    with serve_http(any_db_url, "order_app") as running:
        yield running


_problem = problem


def _run_count(http: httpx.Client) -> int:
    """Runs in the store, counted through the API's own 404/200 (no listing route yet):
    the ids this test may have created."""
    ids = ["o-1", "hook-1", "idem-1", "bad", "typo"]
    return sum(http.get(f"/v1/runs/{i}").status_code == 200 for i in ids)


def test_start_signal_and_result_over_http(
        server: tuple[httpx.Client, Served]) -> None:
    http, served = server
    proc = served.proc
    assert http.get("/healthz").json() == {"ok": True}
    started = http.post("/v1/runs", json={"workflow": "order_app.order", "id": "o-1",
                                          "args": ["apple", 2],
                                          "headers": {"tenant": "acme"}})
    assert started.status_code == 202, started.text
    assert started.headers["location"] == "/v1/runs/o-1"
    first = started.json()
    assert first["workflow_id"] == "o-1" and first["run_id"]
    # The workflow id is the idempotency key: the same start again is the same run.
    again = http.post("/v1/runs", json={"workflow": "order_app.order", "id": "o-1",
                                        "args": ["apple", 2]})
    assert again.status_code == 202 and again.json()["run_id"] == first["run_id"]
    # Still waiting for its approval: a long-poll that times out says so with 202.
    pending = http.get("/v1/runs/o-1/result", params={"wait": "0.2"})
    assert pending.status_code == 202 and pending.json()["status"] in ("running", "suspended")
    signalled = http.post("/v1/runs/o-1/signals/approve", json={"payload": "ann"})
    assert signalled.status_code == 202, signalled.text
    done = http.get("/v1/runs/o-1/result", params={"wait": "20"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "completed" and body["headers"] == {"tenant": "acme"}
    assert body["result"] == {"lines": {"apple": 2}, "approver": "ann", "charge": "charged 2"}
    assert http.get("/v1/runs/o-1").json()["status"] == "completed"

    # Idempotency-Key names the run when the body has no id.
    keyed = http.post("/v1/runs", json={"workflow": "order_app.order", "args": ["pear", 1]},
                      headers={"Idempotency-Key": "idem-1"})
    assert keyed.status_code == 202 and keyed.json()["workflow_id"] == "idem-1"
    keyed_again = http.post("/v1/runs", json={"workflow": "order_app.order",
                                              "args": ["pear", 1]},
                            headers={"Idempotency-Key": "idem-1"})
    assert keyed_again.json()["run_id"] == keyed.json()["run_id"]

    # The webhook pattern: the first delivery creates the run and signals it, at once.
    hook = http.post("/v1/signal-with-start", json={
        "workflow": "order_app.order", "id": "hook-1", "args": ["fig", 3],
        "signal": "approve", "payload": "bot"})
    assert hook.status_code == 202, hook.text
    hooked = http.get("/v1/runs/hook-1/result", params={"wait": "20"})
    assert hooked.status_code == 200 and hooked.json()["result"]["approver"] == "bot"

    # SIGTERM: requests finish, the worker hands back, the client closes, exit 0.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "duro serve stopped" in served.printed()


def test_bad_requests_are_problems_and_store_nothing(
        server: tuple[httpx.Client, Served]) -> None:
    http, _ = server
    before = _run_count(http)
    _problem(http.post("/v1/runs", content=b"not json"), 400, "bad_request")
    _problem(http.post("/v1/runs", content=b"[1, 2]"), 400, "bad_request")
    assert "'workflow' is required" in _problem(http.post("/v1/runs", json={}), 400,
                                                  "bad_request")
    assert "must be an array" in _problem(
        http.post("/v1/runs", json={"workflow": "order_app.order", "args": "x"}), 400,
        "bad_request")
    unfit = http.post("/v1/runs", json={"workflow": "order_app.order", "id": "bad",
                                        "args": ["apple"]})
    assert "missing a required argument: 'qty'" in _problem(unfit, 400, "invalid_payload")
    assert unfit.json()["arguments"] is True  # a remote client's WorkflowArgumentsError
    _problem(http.post("/v1/runs", json={"workflow": "order_app.order", "id": "bad",
                                         "args": ["apple", 1], "headers": {"k": 1}}),
             400, "invalid_argument")
    _problem(http.post("/v1/runs", json={"workflow": "order_app.order", "id": "bad\n",
                                         "args": ["apple", 1]}), 400, "invalid_argument")
    _problem(http.post("/v1/signal-with-start", json={
        "workflow": "order_app.order", "signal": "approve", "args": ["a", 1]}),
        400, "bad_request")  # no id: a retried delivery must not start a second run
    _problem(http.get("/v1/runs/nosuch"), 404, "run_not_found")
    _problem(http.get("/v1/runs/nosuch/result", params={"wait": "0.1"}), 404,
             "run_not_found")
    _problem(http.post("/v1/runs/nosuch/signals/approve", json={}), 404, "run_not_found")
    _problem(http.get("/v1/runs/o-1/result", params={"wait": "-1"}), 400, "invalid_argument")
    _problem(http.get("/v1/runs/o-1/result", params={"wait": "soon"}), 400,
             "invalid_argument")
    _problem(http.get("/v1/runs/o-1/result", params={"wait": "nan"}), 400,
             "invalid_argument")
    # A server with the workflows' code refuses a name none of them has (a typo).
    assert "no workflow named 'order_app.nope'" in _problem(
        http.post("/v1/runs", json={"workflow": "order_app.nope", "id": "typo"}), 404,
        "workflow_not_found")
    assert _run_count(http) == before  # nothing was stored


def test_a_body_over_the_limit_is_refused_before_it_is_read(
        server: tuple[httpx.Client, Served]) -> None:
    """4 MiB at most: a larger ``Content-Length`` is a 413 at once (nothing of it read),
    and a body without one (chunked) is refused as soon as the bytes pass the limit; a
    client gone mid-body is not a server error (nothing logged)."""
    import socket

    from duro.server._problems import MAX_BODY

    http, served = server
    host, port = served.url.removeprefix("http://").split(":")

    def raw(request: bytes, then: bytes = b"") -> bytes:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(request)
            if then:
                with contextlib.suppress(OSError):  # it may answer and close first
                    sock.sendall(then)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            return answer

    head = (b"POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n")
    declared = raw(head + b"Content-Length: %d\r\n\r\n" % (200 * 1024 * 1024))  # no body
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    assert b'"code":"body_too_large"' in declared
    chunk = b"x" * (1024 * 1024)
    chunked = raw(head + b"Transfer-Encoding: chunked\r\n\r\n",
                  b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for _ in range(6)))
    assert chunked.startswith(b"HTTP/1.1 413"), chunked[:200]
    assert MAX_BODY == 4 * 1024 * 1024
    # Gone after 11 bytes of 1000: no 500 logged.
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + b'Content-Length: 1000\r\n\r\n{"workflow"')
    assert http.get("/healthz").status_code == 200  # the server goes on
    time.sleep(0.3)
    assert "failed" not in "".join(served.output), "".join(served.output)[-2000:]
    assert "Traceback" not in "".join(served.output)
