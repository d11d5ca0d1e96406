"""Long polls of a remote operation (docs/rpc.md): ``GET /v1/operations/{name}/{id}
?wait=`` answers as soon as the operation ends (or when the wait has passed), refuses a
bad wait; ``duro.call`` polls with it, so a running operation costs the caller's history
one ``step_retrying`` per long poll instead of one per short poll; a draining worker
does not wait for a long poll in flight.

Real processes: payments (the callee, ``duro serve --worker``, on SQLite and on
PostgreSQL) and orders (callers, ``duro serve --worker`` on SQLite, or an embedded worker
in this process for the drain), on free loopback ports."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

import duro
from duro.step._step import _WAITING
from tests.acceptance.rpc_pair import Pair, pair_on
from tests.acceptance.serving import problem
from tests.conftest import run

_HELD = 0.8  # the share of its wait a callee holds a long poll that duro.call counts held


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Pair]:
    """Payments on each store (its long polls wait through it), orders on SQLite."""
    gates = tmp_path_factory.mktemp("gates")
    if request.param == "sqlite":
        with pair_on(f"sqlite:///{gates}/payments.db", gates) as both:
            yield both
        return
    from tests.conftest import drop_schema

    cluster = request.getfixturevalue("pg_cluster")
    url: str = cluster.fresh_url()
    try:
        with pair_on(url, gates) as both:
            yield both
    finally:
        drop_schema(cluster, url)


def _headers(pair: Pair) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair.token}"}


def _state(pair: Pair, operation_id: str, wait: str | None = None) -> httpx.Response:
    return httpx.get(f"{pair.payments.url}/v1/operations/charge/{operation_id}",
                     params=None if wait is None else {"wait": wait},
                     headers=_headers(pair), timeout=90)


def _start(pair: Pair, operation_id: str, order_id: str) -> None:
    response = httpx.post(f"{pair.payments.url}/v1/operations/charge", headers=_headers(pair),
                          json={"operation_id": operation_id, "args": [order_id, 7]})
    assert response.status_code == 202, response.text


def _runs(pair: Pair) -> list[str]:
    response = httpx.get(f"{pair.payments.url}/v1/runs", headers=_headers(pair), timeout=30)
    assert response.status_code == 200, response.text
    return sorted(r["run_id"] for r in response.json()["runs"])


def test_the_long_poll_waits_and_answers_as_soon_as_the_operation_ends(pair: Pair) -> None:
    _start(pair, "lp-route", "gated-lp-route")
    pair.wait_entered("gated-lp-route")
    began = time.monotonic()
    held = _state(pair, "lp-route", "1")
    assert held.status_code == 200 and held.json()["status"] == "running", held.text
    assert time.monotonic() - began >= 1.0  # held for the whole wait: it still runs
    with ThreadPoolExecutor(1) as pool:
        polling = pool.submit(_state, pair, "lp-route", "50")
        # Whether the poll is waiting already or asks in a moment, it is answered as the
        # operation ends, not at its wait.
        pair.open_gate("gated-lp-route")
        opened = time.monotonic()
        answer = polling.result(timeout=60)
    took = time.monotonic() - opened
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"operation_id": "lp-route", "status": "completed",
                             "result": {"charge_id": "ch_gated-lp-route_7", "amount": 7}}
    assert took < 10, f"answered {took:.2f}s after the end (its wait: 50 s)"
    # Ended: any wait answers at once.
    began = time.monotonic()
    assert _state(pair, "lp-route", "60").json()["status"] == "completed"
    assert time.monotonic() - began < 5


def test_a_bad_wait_is_refused_and_stores_nothing(pair: Pair) -> None:
    before = _runs(pair)
    for operation_id in ("lp-route", "lp-never-started"):
        for wait in ("60.5", "61", "-1", "abc", "nan", "inf", "1e9", ""):
            began = time.monotonic()
            response = _state(pair, operation_id, wait)
            problem(response, 400, "invalid_argument")
            assert "wait" in response.json()["detail"]
            assert time.monotonic() - began < 5  # refused, not waited
    assert _state(pair, "lp-never-started").status_code == 404
    assert _runs(pair) == before


def _retries(pair: Pair, order_id: str, at: Any) -> int:
    return sum(e["kind"] == "step_retrying" for e in pair.history(order_id, at=at))


def test_a_long_call_records_one_step_retrying_per_long_poll(pair: Pair) -> None:
    """Callbacks off, two calls to operations that run for the same few seconds: one
    with long polls of 2 s, one with short polls (``long_poll=0``: how every call polled
    before, backing off from 0.1 s to its ``poll_interval`` of 0.5 s)."""
    long_poll, running = 2.0, 5.0
    with pair.side("long_poll.db", {"LONG_POLL": f"{long_poll:g}", "POLL_INTERVAL": "0.5"}
                   ) as side:
        began = time.monotonic()
        pair.order("gated-lp-long", 1, at=side)
        pair.order("gated-lp-short", 1, workflow="order_short", at=side)
        pair.wait_entered("gated-lp-long")
        pair.wait_entered("gated-lp-short")
        time.sleep(running)  # the operations run this long: the scenario, not a wait
        pair.open_gate("gated-lp-long")
        pair.open_gate("gated-lp-short")
        for order_id in ("gated-lp-long", "gated-lp-short"):
            assert pair.result(order_id, at=side)["payment"]["charge_id"] == \
                f"ch_{order_id}_1"
        lasted = time.monotonic() - began
        long, short = (_retries(pair, o, side) for o in ("gated-lp-long", "gated-lp-short"))
    # One for the start (answered at once), then one per long poll held >= 80% of 2 s.
    bound = 1 + math.ceil(lasted / (long_poll * _HELD))
    print(f"over {lasted:.1f}s: {long} step_retrying with long polls (bound {bound}), "
          f"{short} with short polls")
    assert long <= bound
    assert short >= 2 * long, (long, short)


_CALLEE: dict[str, duro.Endpoint] = {}


@duro.workflow(name="lp_drain_order")
async def lp_drain_order(order_id: str) -> Any:
    return await duro.call(_CALLEE["payments"], "charge", order_id, 3)


async def _until_long_polling(limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not _WAITING:
        assert time.monotonic() < deadline, "no long poll started"
        await asyncio.sleep(0.01)


def test_a_draining_worker_does_not_wait_for_a_long_poll(pair: Pair, tmp_path: Any) -> None:
    """The call's attempt is abandoned as not started (nothing recorded of it): the run
    is handed back due at once, and the next worker polls again and gets the result."""
    _CALLEE["payments"] = duro.Endpoint(url=pair.payments.url, token=pair.token,
                                        long_poll=50)
    url = f"sqlite:///{tmp_path}/caller.db"

    async def drain() -> tuple[float, bool, list[str], str]:
        async with duro.Engine(url, workflows=[lp_drain_order]) as engine:
            handle = await engine.start(lp_drain_order, "gated-lp-drain", id="lp-drain")
            await _until_long_polling()
            assert engine.worker is not None
            began = time.monotonic()
            handed_back = await engine.worker.drain(30.0)
            took = time.monotonic() - began
            kinds = [str(e.kind) for e in await handle.history()]
            status = str((await handle.describe()).status)
        return took, handed_back, kinds, status

    took, handed_back, kinds, status = run(drain())
    assert took < 5 and handed_back, f"drained in {took:.2f}s (a long poll of 50 s held)"
    assert status == "suspended"
    assert kinds.count("step_retrying") == 1  # the start's: nothing of the long poll
    assert "step_completed" not in kinds and "call_completed" not in kinds

    async def resume() -> tuple[Any, list[str]]:
        async with duro.Engine(url, workflows=[lp_drain_order]) as engine:
            await _until_long_polling()
            pair.open_gate("gated-lp-drain")
            handle = engine.get_handle("lp-drain")
            result = await handle.result(timeout=30)
            return result, [str(e.kind) for e in await handle.history()]

    result, kinds = run(resume())
    assert result == {"charge_id": "ch_gated-lp-drain_3", "amount": 3}
    assert kinds.count("step_retrying") == 1 and kinds.count("call_completed") == 1


def test_the_remote_client_long_polls_an_operation(pair: Pair) -> None:
    _start(pair, "lp-client", "gated-lp-client")
    pair.wait_entered("gated-lp-client")

    async def poll() -> tuple[str, float, str]:
        async with duro.Client(pair.payments.url, token=pair.token) as payments:
            with pytest.raises(duro.InvalidArgumentError):
                await payments.operations.get("charge", "lp-client", wait=-1)
            began = time.monotonic()
            running = await payments.operations.get("charge", "lp-client", wait=0.5)
            held = time.monotonic() - began
            pair.open_gate("gated-lp-client")
            ended = await payments.operations.get("charge", "lp-client", wait=50)
            return running.status, held, ended.status

    running, held, ended = run(poll())
    assert (running, ended) == ("running", "completed") and held >= 0.5


class _OldCallee:
    """A callee that predates ``?wait=``: a real HTTP server on a free loopback port that
    answers each state read at once (``running`` until told the operation is done) and
    counts the reads."""

    def __init__(self) -> None:
        outer = self
        self.reads = 0
        self.done = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: str) -> None:
                body = orjson.dumps({"operation_id": "x", "status": status,
                                     **({"result": 42} if status == "completed" else {})})
                self.send_response(202 if self.command == "POST" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._answer("running")

            def do_GET(self) -> None:
                outer.reads += 1
                self._answer("completed" if outer.done.is_set() else "running")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@duro.workflow(name="lp_old_callee_order")
async def lp_old_callee_order() -> Any:
    return await duro.call(_CALLEE["old"], "legacy")


def test_a_callee_without_long_polls_is_polled_with_backoff(tmp_path: Any) -> None:
    """Its answers come back at once: each next poll backs off as before (0.1 s doubling
    up to ``poll_interval``, 1 s here), not 0.1 s after the last as after a held one."""
    old = _OldCallee()
    _CALLEE["old"] = duro.Endpoint(url=old.url, long_poll=30, poll_interval=1.0)

    async def go() -> tuple[Any, int, float, int]:
        async with duro.Engine(f"sqlite:///{tmp_path}/caller.db",
                               workflows=[lp_old_callee_order]) as engine:
            handle = await engine.start(lp_old_callee_order, id="lp-old")
            deadline = time.monotonic() + 30
            while old.reads < 2:
                assert time.monotonic() < deadline, "never polled"
                await asyncio.sleep(0.01)
            began, first = time.monotonic(), old.reads
            await asyncio.sleep(3.0)  # the window the reads are counted over
            reads, window = old.reads - first, time.monotonic() - began
            old.done.set()
            result = await handle.result(timeout=30)
            kinds = [str(e.kind) for e in await handle.history()]
            return result, reads, window, kinds.count("step_retrying")

    try:
        result, reads, window, retries = run(go())
    finally:
        old.close()
    assert result == 42
    # From the 2nd read on the delays are 0.2, 0.4, 0.8, 1, 1... s: at most 6 reads in
    # 3 s (a held answer's 0.1 s would make 20 or more).
    print(f"{reads} reads in {window:.1f}s; {retries} step_retrying")
    assert reads <= 6, reads
