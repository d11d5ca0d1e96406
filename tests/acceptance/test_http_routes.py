"""The HTTP API's routes beyond the first slice (issue 16), on a real ``duro serve``
process, both stores: updates and queries, cancel/terminate/retry/reset/fork, listing,
history, live events (SSE, resumable, ended by the run's end and by SIGTERM),
schedules, queues, workers, readiness; each route's bad input refused with a problem
document and nothing stored."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.acceptance.serving import Served, problem, serve_http, sse_messages

Server = tuple[httpx.Client, Served]


@pytest.fixture
def server(any_db_url: str) -> Iterator[Server]:
    with serve_http(any_db_url, "order_app", "http_app") as running:
        yield running


def _start(http: httpx.Client, workflow: str, workflow_id: str, *args: Any) -> dict[str, Any]:
    started = http.post("/v1/runs", json={"workflow": workflow, "id": workflow_id,
                                          "args": list(args)})
    assert started.status_code == 202, started.text
    body: dict[str, Any] = started.json()
    return body


def _wait_status(http: httpx.Client, workflow_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        run: dict[str, Any] = http.get(f"/v1/runs/{workflow_id}").json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.02)


def _listed(http: httpx.Client) -> set[str]:
    page = http.get("/v1/runs", params={"limit": 1000})
    assert page.status_code == 200, page.text
    return {r["workflow_id"] for r in page.json()["runs"]}


def test_updates_and_queries(server: Server) -> None:
    http, _ = server
    _start(http, "order_app.order", "o-u", "apple", 2)
    added = http.post("/v1/runs/o-u/updates/add", json={"args": ["pear", 3], "id": "u1"})
    assert added.status_code == 200, added.text
    assert added.json() == {"workflow_id": "o-u", "update_id": "u1", "result": 5}
    # The update id makes it idempotent: the same update again is the same outcome.
    again = http.post("/v1/runs/o-u/updates/add", json={"args": ["pear", 3], "id": "u1"})
    assert again.json()["result"] == 5
    assert http.get("/v1/runs/o-u/queries/total").json() == {"result": 5}
    assert http.post("/v1/runs/o-u/queries/total", json={}).json() == {"result": 5}
    problem(http.get("/v1/runs/o-u/queries/nosuch"), 422, "query_failed")
    problem(http.get("/v1/runs/o-u/queries/total", params={"args": "[1]"}), 422,
            "query_failed")
    problem(http.get("/v1/runs/o-u/queries/total", params={"args": "nope"}), 400,
            "bad_request")
    problem(http.get("/v1/runs/o-u/queries/total", params={"args": '{"a": 1}'}), 400,
            "bad_request")
    problem(http.get("/v1/runs/o-u/queries/total", params={"timeout": "-1"}), 400,
            "invalid_argument")
    problem(http.get("/v1/runs/o-u/queries/total", params={"color": "red"}), 400,
            "bad_request")
    problem(http.get("/v1/runs/nosuch/queries/total"), 404, "run_not_found")
    problem(http.post("/v1/runs/o-u/updates/add", json={"args": "x"}), 400, "bad_request")
    problem(http.post("/v1/runs/o-u/updates/add", json={"timeout": 0}), 400,
            "invalid_argument")
    problem(http.post("/v1/runs/o-u/updates/add", json={"arg": []}), 400, "bad_request")
    problem(http.post("/v1/runs/o-u/updates/add", json={"id": ""}), 400, "invalid_argument")
    problem(http.post("/v1/runs/nosuch/updates/add", json={}), 404, "run_not_found")
    problem(http.post("/v1/runs/o-u/updates/add", json={"args": ["x"]}), 422,
            "update_handler_failed")  # add(name) misses its second argument
    assert http.get("/v1/runs/o-u/queries/total").json() == {"result": 5}  # unchanged

    # Update-with-start: the run is started and updated in one request.
    uws = http.post("/v1/update-with-start", json={
        "workflow": "order_app.order", "id": "uws-1", "args": ["fig", 1],
        "update": "add", "update_args": ["fig", 2], "update_id": "w1"})
    assert uws.status_code == 200, uws.text
    assert uws.headers["location"] == "/v1/runs/uws-1"
    assert uws.json()["result"] == 3 and uws.json()["run_id"]
    # The same update id again (a retried request) is the same update, not a second one
    # (it was a unique-key error of the store: a 503).
    retried = http.post("/v1/update-with-start", json={
        "workflow": "order_app.order", "id": "uws-1", "args": ["fig", 1],
        "update": "add", "update_args": ["fig", 2], "update_id": "w1"})
    assert retried.status_code == 200, retried.text
    assert retried.json()["result"] == 3
    assert http.get("/v1/runs/uws-1/queries/total").json() == {"result": 3}
    problem(http.post("/v1/update-with-start", json={
        "workflow": "order_app.order", "update": "add", "args": ["fig", 1]}), 400,
        "bad_request")  # no id
    problem(http.post("/v1/update-with-start", json={
        "workflow": "order_app.order", "id": "uws-2", "update": "add",
        "args": ["fig", 1], "kwargs": {"update": 1}}), 400, "bad_request")

    # An update that outlasts its wait is 202 pending; the same id again gets its result.
    _start(http, "http_app.gate", "g-1")
    pending = http.post("/v1/runs/g-1/updates/wait_open", json={"id": "w", "timeout": 0.3})
    assert pending.status_code == 202, pending.text
    assert pending.json() == {"workflow_id": "g-1", "update_id": "w", "status": "pending"}
    assert http.post("/v1/runs/g-1/signals/open", json={}).status_code == 202
    done = http.post("/v1/runs/g-1/updates/wait_open", json={"id": "w"})
    assert done.status_code == 200 and done.json()["result"] == "opened"
    assert _listed(http) == {"o-u", "uws-1", "g-1"}  # the refusals stored nothing


def test_cancel_terminate_retry_reset_and_fork(server: Server) -> None:
    http, _ = server
    _start(http, "order_app.order", "o-c", "apple", 1)
    cancelled = http.post("/v1/runs/o-c/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["workflow_id"] == "o-c"
    assert _wait_status(http, "o-c", "cancelled")["status"] == "cancelled"
    problem(http.post("/v1/runs/o-c/cancel"), 404, "run_not_found")  # no live run

    _start(http, "order_app.order", "o-t", "apple", 1)
    _wait_status(http, "o-t", "suspended")
    terminated = http.post("/v1/runs/o-t/terminate", json={"reason": "by hand"})
    assert terminated.status_code == 200, terminated.text
    assert terminated.json()["status"] == "terminated"
    assert terminated.json()["error"]["message"] == "by hand"
    problem(http.post("/v1/runs/o-t/terminate", json={"reason": 5}), 400, "bad_request")
    problem(http.post("/v1/runs/o-t/terminate", json={"reason": "a\x00b"}), 400,
            "invalid_argument")

    # Reset: a new run of the same id that keeps the first events (its own 201).
    reset = http.post("/v1/runs/o-t/reset", json={"to": 1})
    assert reset.status_code == 201, reset.text
    assert reset.headers["location"] == "/v1/runs/o-t"
    assert reset.json()["run_id"] != terminated.json()["run_id"]
    problem(http.post("/v1/runs/o-t/reset", json={}), 400, "bad_request")
    problem(http.post("/v1/runs/o-t/reset", json={"to": True}), 400, "bad_request")
    problem(http.post("/v1/runs/o-t/reset", json={"to": 10_000}), 400, "invalid_argument")

    # Fork: a new workflow id, the original left alone.
    forked = http.post("/v1/runs/o-t/fork", json={"id": "o-t-copy"})
    assert forked.status_code == 201, forked.text
    assert forked.headers["location"] == "/v1/runs/o-t-copy"
    problem(http.post("/v1/runs/o-t/fork", json={"id": "o-t-copy"}), 409,
            "workflow_already_started")
    problem(http.post("/v1/runs/o-t/fork", json={"to": 0}), 400, "invalid_argument")

    # Retry: only a failed run; a new run from where it failed.
    _start(http, "http_app.failing", "f-1")
    _wait_status(http, "f-1", "failed")
    retried = http.post("/v1/runs/f-1/retry")
    assert retried.status_code == 201, retried.text
    problem(http.post("/v1/runs/o-t-copy/retry"), 409, "conflict")
    problem(http.post("/v1/runs/nosuch/retry"), 404, "run_not_found")
    problem(http.post("/v1/runs/nosuch/terminate"), 404, "run_not_found")
    assert _listed(http) == {"o-c", "o-t", "o-t-copy", "f-1"}


def test_listing_and_history(server: Server) -> None:
    http, _ = server
    for i in range(3):
        started = http.post("/v1/runs", json={"workflow": "order_app.order", "id": f"l-{i}",
                                              "args": ["apple", i],
                                              "search_attributes": {"n": i}})
        assert started.status_code == 202
    first = http.get("/v1/runs", params={"limit": 2, "workflow": "order_app.order"}).json()
    assert [r["workflow_id"] for r in first["runs"]] == ["l-2", "l-1"]
    rest = http.get("/v1/runs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [r["workflow_id"] for r in rest["runs"]] == ["l-0"]
    assert rest["next_cursor"] is None
    found = http.get("/v1/runs", params={"search.n": "1"}).json()["runs"]
    assert [r["workflow_id"] for r in found] == ["l-1"]
    assert http.get("/v1/runs", params={"id_prefix": "l-", "status": "completed"}
                    ).json()["runs"] == []
    assert len(http.get("/v1/runs", params={"created_after": "2000-01-01T00:00:00Z"}
                        ).json()["runs"]) == 3
    for params, code in (({"limit": "0"}, "invalid_argument"),
                         ({"limit": "x"}, "invalid_argument"),
                         ({"status": "happy"}, "invalid_argument"),
                         ({"cursor": "nope!"}, "invalid_argument"),
                         ({"created_after": "yesterday"}, "invalid_argument"),
                         ({"created_after": "2024-01-01T00:00:00"}, "invalid_argument"),
                         ({"search.1bad": "x"}, "invalid_argument"),
                         ({"stauts": "running"}, "bad_request")):
        problem(http.get("/v1/runs", params=params), 400, code)

    assert http.post("/v1/runs/l-1/signals/approve", json={"payload": "ann"}).status_code \
        == 202
    _wait_status(http, "l-1", "completed")
    history = http.get("/v1/runs/l-1/history").json()
    kinds = [e["kind"] for e in history["events"]]
    assert kinds[0] == "run_started" and kinds[-1] == "run_completed"
    assert [e["seq"] for e in history["events"]] == list(range(len(kinds)))
    assert history["next_after"] is None and history["status"] == "completed"
    page = http.get("/v1/runs/l-1/history", params={"after": 0, "limit": 2}).json()
    assert [e["seq"] for e in page["events"]] == [1, 2] and page["next_after"] == 2
    last = http.get("/v1/runs/l-1/history", params={"after": 2, "limit": 2}).json()
    assert last["events"] == history["events"][3:] and last["next_after"] is None
    problem(http.get("/v1/runs/l-1/history", params={"after": "-1"}), 400,
            "invalid_argument")
    problem(http.get("/v1/runs/l-1/history", params={"limit": "0"}), 400, "invalid_argument")
    problem(http.get("/v1/runs/nosuch/history"), 404, "run_not_found")
    problem(http.get("/v1/runs/l-1/history", params={"run_id": "nosuch"}), 404,
            "run_not_found")


def test_events_are_live_resumable_and_end_with_the_run(server: Server) -> None:
    http, served = server
    proc = served.proc
    _start(http, "order_app.order", "o-e", "apple", 2)
    seen: list[dict[str, str]] = []
    with http.stream("GET", "/v1/runs/o-e/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for message in sse_messages(stream.iter_lines()):
            seen.append(message)
            if message.get("id") == "0":  # the run has started: let it finish
                assert http.post("/v1/runs/o-e/signals/approve",
                                 json={"payload": "ann"}).status_code == 202
            if message.get("event") == "end":
                break
    events = [m for m in seen if "id" in m]
    assert [int(m["id"]) for m in events] == list(range(len(events)))
    assert '"kind":"run_completed"' in events[-1]["data"]
    assert '"status":"completed"' in seen[-1]["data"]

    # Resumed after event 1: the events after it, then the end, at once.
    with http.stream("GET", "/v1/runs/o-e/events", headers={"Last-Event-ID": "1"}) as again:
        resumed = list(sse_messages(again.iter_lines()))
    assert [m["id"] for m in resumed if "id" in m] == [m["id"] for m in events[2:]]
    assert resumed[-1]["event"] == "end"
    problem(http.get("/v1/runs/o-e/events", headers={"Last-Event-ID": "x"}), 400,
            "invalid_argument")
    problem(http.get("/v1/runs/nosuch/events"), 404, "run_not_found")

    # A client that goes away, then one still watching a live run when SIGTERM comes:
    # its stream ends and the server stops at once.
    _start(http, "order_app.order", "o-live", "apple", 1)
    with http.stream("GET", "/v1/runs/o-live/events") as dropped:
        next(sse_messages(dropped.iter_lines()))
    watched: list[dict[str, str]] = []
    ended = threading.Event()

    def watch() -> None:
        with http.stream("GET", "/v1/runs/o-live/events") as live:
            for message in sse_messages(live.iter_lines()):
                watched.append(message)
        ended.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    deadline = time.monotonic() + 10
    while not watched and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watched, "the stream sent nothing"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert ended.wait(10) and time.monotonic() - started < 10
    assert all(m.get("event") != "end" for m in watched)  # the run goes on


def test_schedules_queues_workers_and_readiness(server: Server) -> None:
    http, _ = server
    assert http.get("/readyz").json() == {"ok": True}
    created = http.post("/v1/schedules", json={
        "id": "nightly", "workflow": "order_app.order", "args": ["apple", 1],
        "cron": "0 3 * * *", "timezone": "Europe/Berlin", "note": "n"})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/schedules/nightly"
    assert created.json()["cron"] == "0 3 * * *" and not created.json()["paused"]
    problem(http.post("/v1/schedules", json={"id": "nightly", "workflow": "order_app.order",
                                             "args": ["apple", 1], "every": 60}),
            409, "schedule_already_exists")
    for bad in ({"id": "b", "cron": "nope"}, {"id": "b", "every": 60, "timezone": "Mars/X"},
                {"id": "b"}, {"id": "b", "every": 60, "overlap": "x"},
                {"id": "b@x", "every": 60}, {"id": "b", "every": 60, "note": "\x00"}):
        problem(http.post("/v1/schedules", json={
            "workflow": "order_app.order", "args": ["apple", 1], **bad}), 400,
            "invalid_argument")
    problem(http.post("/v1/schedules", json={"id": "b", "workflow": "order_app.order",
                                             "args": ["apple"], "every": 60}),
            400, "invalid_payload")
    problem(http.post("/v1/schedules", json={"id": "b", "every": 60}), 400, "bad_request")
    listed = http.get("/v1/schedules").json()["schedules"]
    assert [s["schedule_id"] for s in listed] == ["nightly"]  # nothing else was stored
    assert http.get("/v1/schedules/nightly").json()["timezone"] == "Europe/Berlin"
    problem(http.get("/v1/schedules/nosuch"), 404, "schedule_not_found")

    paused = http.post("/v1/schedules/nightly/pause", json={"note": "quiet"})
    assert paused.status_code == 200 and paused.json()["paused"]
    assert not http.post("/v1/schedules/nightly/resume").json()["paused"]
    triggered = http.post("/v1/schedules/nightly/trigger")
    assert triggered.status_code == 201, triggered.text
    assert triggered.json()["workflow_id"].startswith("nightly@manual-")
    backfilled = http.post("/v1/schedules/nightly/backfill", json={
        "start": "2024-05-01T00:00:00Z", "end": "2024-05-02T23:59:59Z"})
    assert backfilled.status_code == 200, backfilled.text
    assert len(backfilled.json()["started"]) == 2
    again = http.post("/v1/schedules/nightly/backfill", json={
        "start": "2024-05-01T00:00:00Z", "end": "2024-05-02T23:59:59Z"})
    assert again.json()["started"] == []  # each tick has its run already
    problem(http.post("/v1/schedules/nightly/backfill", json={"start": "2024-05-01"}), 400,
            "invalid_argument")
    problem(http.post("/v1/schedules/nightly/backfill", json={
        "start": 10, "end": 5}), 400, "invalid_argument")

    queues = http.get("/v1/queues").json()["queues"]
    assert "default" in {q["queue"] for q in queues}
    workers = http.get("/v1/workers").json()["workers"]
    assert len(workers) == 1 and workers[0]["live"] and workers[0]["pid"] > 0

    assert http.delete("/v1/schedules/nightly").status_code == 204
    problem(http.delete("/v1/schedules/nightly"), 404, "schedule_not_found")
    problem(http.get("/v1/nowhere"), 404, "not_found")
    problem(http.put("/v1/runs"), 405, "method_not_allowed")


def test_openapi_and_docs_are_served(server: Server) -> None:
    http, _ = server
    spec = http.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    assert spec["paths"]["/v1/runs/{workflow_id}/updates/{name}"]["post"][
        "x-duro-scope"] == "write"
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'fetch("openapi.json")' in page.text and "http" not in page.text.split(
        "<script>")[1].split("fetch(")[0]  # nothing fetched from elsewhere
