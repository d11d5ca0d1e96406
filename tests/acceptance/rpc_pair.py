"""Two real deployments for the durable RPC tests and scripts (docs/rpc.md): payments
(the callee, PostgreSQL, API tokens) and orders (the caller, SQLite, a callback secret),
each a ``duro serve --worker`` process on a fixed loopback port so that it restarts where
its peer expects it; and :class:`CallbackGate`, a proxy in front of a caller's callback
route that refuses callbacks for as long as a test says (a real refusal: the callee's
delivery gets HTTP 503 from a real socket).

Shared by ``tests/acceptance/test_rpc.py`` (short outages, 20-call soak) and
``scripts/rpc_soak.py`` (the 30-second outage, the 200-call soak)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import httpx

import duro
from duro._history import EventKind
from tests.acceptance.serving import Served, serve
from tests.conftest import run

__all__ = ["SECRET", "CallbackGate", "Deployment", "Loopback", "Pair", "Receiver",
           "callback_outage", "free_port", "pair_on", "soak"]

SECRET = "orders-callback-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Deployment:
    """One ``duro serve --worker`` on a fixed port, killed with SIGKILL on demand."""

    def __init__(self, db_url: str, module: str, env: dict[str, str], *args: str) -> None:
        self.db_url, self.module, self.env, self.args = db_url, module, env, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stack: contextlib.ExitStack | None = None
        self.served: Served | None = None

    def start(self) -> None:
        self._stack = contextlib.ExitStack()
        self.served = self._stack.enter_context(serve(
            self.db_url, self.module, "--worker", *self.args, env=self.env, port=self.port))

    def kill(self) -> None:
        assert self.served is not None and self._stack is not None
        self.served.proc.kill()  # SIGKILL: nothing is flushed or released
        self.served.proc.wait(timeout=30)
        self._stack.close()
        self.served = None

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()


class Pair:
    """The two deployments, payments' token, and the gate files of gated charges."""

    def __init__(self, payments: Deployment, orders: Deployment, token: str,
                 gates: Path) -> None:
        self.payments, self.orders, self.token, self.gates = payments, orders, token, gates

    def order(self, order_id: str, amount: int, *, workflow: str = "order",
              at: Deployment | None = None, **kwargs: Any) -> str:
        """Start an order (at orders, or at another caller deployment); its run id."""
        response = httpx.post(f"{(at or self.orders).url}/v1/runs", json={
            "workflow": workflow, "id": order_id, "args": [order_id, amount],
            "kwargs": kwargs}, timeout=30)
        assert response.status_code == 202, response.text
        return str(response.json()["run_id"])

    def result(self, order_id: str, timeout: float = 30.0, *,
               at: Deployment | None = None) -> dict[str, Any]:
        response = httpx.get(f"{(at or self.orders).url}/v1/runs/{order_id}/result",
                             params={"wait": str(timeout)}, timeout=timeout + 10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "completed", body
        result: dict[str, Any] = body["result"]
        return result

    def history(self, order_id: str, *, at: Deployment | None = None) -> list[dict[str, Any]]:
        response = httpx.get(f"{(at or self.orders).url}/v1/runs/{order_id}/history",
                             timeout=30)
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    def charges(self, caller_run_id: str) -> int:
        """Runs of ``charge`` the callee made for this caller run (its store's count)."""
        response = httpx.get(f"{self.payments.url}/v1/runs", params={
            "workflow": "charge", "id_prefix": f"duro.op/charge/{caller_run_id}."},
            headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        assert response.status_code == 200, response.text
        return len(response.json()["runs"])

    def open_gate(self, order_id: str) -> None:
        (self.gates / order_id).touch()

    def wait_entered(self, order_id: str, timeout: float = 30.0) -> None:
        """Until the callee's step of this order runs (the operation started there)."""
        deadline = time.monotonic() + timeout
        while not (self.gates / f"{order_id}.entered").exists():
            assert time.monotonic() < deadline, f"{order_id} never reached the callee"
            time.sleep(0.02)

    @contextlib.contextmanager
    def side(self, db: str, env: dict[str, str]) -> Iterator[Deployment]:
        """Another orders deployment (its own SQLite database), calling the same
        payments."""
        side = Deployment(self.orders.db_url.replace("orders.db", db), "rpc_orders",
                          {"PAYMENTS_URL": self.payments.url, "PAYMENTS_TOKEN": self.token,
                           **env})
        side.start()
        try:
            yield side
        finally:
            side.stop()


async def _token(url: str) -> str:
    async with duro.Client(url) as client:
        secret, _ = await client.tokens.create("orders", scope="write")
        return str(secret)


@contextlib.contextmanager
def pair_on(pg_url: str, gates: Path, *, poll_interval: float = 2.0) -> Iterator[Pair]:
    """Payments on ``pg_url`` (a fresh schema), orders on SQLite in ``gates``."""
    token = run(_token(pg_url))
    payments = Deployment(pg_url, "rpc_payments", {"GATE_DIR": str(gates)}, "--auth")
    orders = Deployment(f"sqlite:///{gates}/orders.db", "rpc_orders", {})
    orders.env.update({
        "PAYMENTS_URL": payments.url, "PAYMENTS_TOKEN": token, "ORDERS_URL": orders.url,
        "DURO_CALLBACK_SECRET": SECRET, "POLL_INTERVAL": str(poll_interval),
        "GATE_DIR": str(gates)})
    payments.start()
    orders.start()
    try:
        yield Pair(payments, orders, token, gates)
    finally:
        orders.stop()
        payments.stop()


class Loopback:
    """A small real HTTP server on a free loopback port, in a thread: each POST is
    answered by :meth:`handle`."""

    def __init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = outer.handle(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class CallbackGate(Loopback):
    """A proxy in front of a caller's ``duro serve``: the callee posts callbacks to it;
    while closed it answers them ``503`` (and counts them), while open it forwards them.

    Give its :attr:`url` as the caller's ``Endpoint.callback_url``."""

    def __init__(self, target: str, *, closed: bool = True) -> None:
        super().__init__()
        self.target = target
        self.closed = closed
        self.refused = 0
        self.forwarded: list[int] = []  # the caller's answers to the forwarded callbacks

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self.closed:
            self.refused += 1
            return 503, b'{"detail": "callbacks are down"}'
        response = httpx.post(self.target + path, content=body, timeout=30, headers={
            k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")})
        self.forwarded.append(response.status_code)
        return response.status_code, response.content


class Receiver(Loopback):
    """An outside caller's callback URL: keeps what it receives (path, signature header,
    raw body) and answers 200."""

    def __init__(self) -> None:
        super().__init__()
        self.received: queue.Queue[tuple[str, str | None, bytes]] = queue.Queue()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        self.received.put((path, headers.get("Duro-Signature"), body))
        return 200, b"{}"


def _call_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"].startswith("call_")]


def callback_outage(pair: Pair, seconds: float, *, orders: int = 2,
                    poll_interval: float = 0.5, after: float = 0.0) -> dict[str, Any]:
    """A caller whose callback route refuses for ``seconds``: ``orders`` gated charges,
    their gates opened over the outage's first half; every result must arrive by polling
    while the callbacks are refused (the outage lasts until they are all in, if longer).
    With ``after`` > 0, then waits up to that long for the
    callee's delivery retries to get through once callbacks are back (the caller
    answers them, the runs having ended) and checks they changed nothing.

    Returns the figures: each order's latency from its gate to its result, the
    callbacks refused and forwarded."""
    with CallbackGate("") as gate, pair.side(f"orders-outage-{seconds:g}.db", {
            "ORDERS_URL": gate.url, "DURO_CALLBACK_SECRET": SECRET,
            "POLL_INTERVAL": str(poll_interval)}) as side:
        gate.target = side.url
        start = time.monotonic()
        ids = [f"gated-outage-{seconds:g}-{i}" for i in range(orders)]
        for order_id in ids:
            pair.order(order_id, 11, at=side)
        latencies = []
        for i, order_id in enumerate(ids):
            pair.wait_entered(order_id)
            opened = start + seconds / 2 * (i + 1) / orders
            time.sleep(max(0.0, opened - time.monotonic()))
            pair.open_gate(order_id)
            opened = time.monotonic()
            result = pair.result(order_id, at=side)
            latencies.append(time.monotonic() - opened)
            assert result["payment"] == {"charge_id": f"ch_{order_id}_11", "amount": 11}
        # The gate stays closed until every result is in (on a loaded machine that may
        # be past ``seconds``): they came while callbacks were refused.
        results_in = time.monotonic() - start
        refused = gate.refused
        assert refused >= orders, refused  # each delivery was tried, and refused
        for order_id in ids:
            done = _call_events(pair.history(order_id, at=side))
            assert [e["kind"] for e in done] == ["call_started", "call_completed"]
            assert done[-1]["meta"]["via"] == "poll"
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        gate.closed = False
        deadline = time.monotonic() + after
        while after and len(gate.forwarded) < orders:
            assert time.monotonic() < deadline, f"callbacks never got through: {gate.forwarded}"
            time.sleep(0.1)
        for order_id in ids:  # a late callback to an ended run changes nothing
            done = _call_events(pair.history(order_id, at=side))
            assert [e["kind"] for e in done] == ["call_started", "call_completed"]
        return {"outage_s": round(max(seconds, results_in), 2), "orders": orders,
                "results_in_s": round(results_in, 2), "refused": refused,
                "forwarded": list(gate.forwarded),
                "gate_to_result_s": [round(x, 3) for x in latencies]}


def _ledger(pair: Pair, prefix: str) -> list[tuple[str, str]]:
    """The payments ledger's lines of these orders: (idempotency key, order id)."""
    path = pair.gates / "ledger"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(key, order) for key, order in (line.split() for line in lines)
            if prefix in order]


def _until(what: str, done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def soak(pair: Pair, calls: int, *, spread: float | None = None) -> dict[str, Any]:
    """``calls`` orders, each a call to payments' ``charge`` whose capture takes from 0
    to ``spread`` seconds (default: 0.1 s a call), the last quarter's only once both
    kills are done; orders' process is SIGKILLed and
    restarted once a quarter of the charges are in the ledger, then payments' once half
    are. Then every call must have completed exactly once at payments (one run of
    ``charge`` each, completed, and one ledger key each: the ledger and payments' history
    agree), every caller must have its result once (one ``call_completed``), and no run
    may be left running on either side.

    Returns the figures (timings, what was done at each kill, ledger re-runs)."""
    spread = calls * 0.1 if spread is None else spread
    prefix = f"soak{calls}-"
    # The last quarter waits at a gate until both kills are done: calls are in flight
    # at each kill however fast the rest go.
    ids = [f"{'gated-' if i >= calls * 3 // 4 else ''}{prefix}{i:04d}-"
           f"{int(spread * 1000 * i / calls)}ms" for i in range(calls)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # started as fast as orders takes them
        runs = dict(zip(ids, pool.map(pair.order, ids, range(1, calls + 1)), strict=True))
    all_started = time.monotonic() - started
    kills = {}
    for side, fraction in ((pair.orders, 0.25), (pair.payments, 0.5)):
        _until("the ledger stopped growing",
               lambda f=fraction: len({o for _, o in _ledger(pair, prefix)}) >= calls * f,
               60 + spread)
        done = len({o for _, o in _ledger(pair, prefix)})
        killed = time.monotonic()
        side.kill()
        side.start()
        kills[side.module] = {"at_s": round(killed - started, 2), "charges_done": done,
                              "restart_s": round(time.monotonic() - killed, 2)}
    for order_id in ids:
        if order_id.startswith("gated-"):
            pair.open_gate(order_id)
    for i, order_id in enumerate(ids):
        result = pair.result(order_id, timeout=max(5.0, 60 + spread - (time.monotonic() -
                                                                     started)))
        assert result["payment"] == {"charge_id": f"ch_{order_id}_{i + 1}", "amount": i + 1}
    elapsed = time.monotonic() - started
    return {"calls": calls, "spread_s": spread, "started_in_s": round(all_started, 2),
            "elapsed_s": round(elapsed, 2),
            "kills": kills, **_check_soak(pair, prefix, runs)}


def _check_soak(pair: Pair, prefix: str, runs: dict[str, str]) -> dict[str, Any]:
    """Exactly once on both sides (see :func:`soak`); the figures of the check."""
    ledger = _ledger(pair, prefix)
    keys: dict[str, set[str]] = {}
    for key, order in ledger:
        keys.setdefault(order, set()).add(key)
    assert set(keys) == set(runs), set(runs) ^ set(keys)
    assert all(len(k) == 1 for k in keys.values()), {o: k for o, k in keys.items() if len(k) > 1}
    vias: dict[str, int] = {}
    for order_id in runs:
        done = _call_events(pair.history(order_id))
        assert [e["kind"] for e in done] == ["call_started", "call_completed"], done
        vias[done[-1]["meta"]["via"]] = vias.get(done[-1]["meta"]["via"], 0) + 1
    charges = run(_payments_runs(pair, runs), timeout=240)
    assert charges["charge_completed"] == len(runs), charges
    assert charges["captures_completed"] == len(runs), charges
    return {"ledger_lines": len(ledger), "ledger_keys": sum(len(k) for k in keys.values()),
            "reruns_after_kill": len(ledger) - len(runs), "results_via": vias, **charges}


async def _payments_runs(pair: Pair, runs: dict[str, str]) -> dict[str, float]:
    """Payments' own store, read directly: its runs of ``charge`` for these calls, their
    completed captures; then until no run is left unended on either side."""
    counts: dict[str, float] = {"charge_completed": 0, "captures_completed": 0}
    async with duro.Client(pair.payments.db_url) as payments:
        for run_id in runs.values():
            found = await payments.list(name="charge", id_prefix=f"duro.op/charge/{run_id}.")
            assert len(found) == 1, (run_id, found)
            info = found[0]
            counts["charge_completed"] += info.status == duro.RunStatus.COMPLETED
            history = await payments.get_handle(info.workflow_id).history()
            counts["captures_completed"] += sum(
                e.kind == EventKind.STEP_COMPLETED for e in history)
        counts["payments_settled_s"] = await _settled(
            payments, [f"duro.op/charge/{run_id}." for run_id in runs.values()])
    async with duro.Client(pair.orders.db_url) as orders:
        counts["orders_settled_s"] = await _settled(orders, list(runs))
    return counts


async def _settled(client: duro.Client, prefixes: list[str], timeout: float = 50.0
                   ) -> float:
    """Seconds until every run whose id starts with one of ``prefixes`` has ended
    (bounded: one left pending, running or suspended past ``timeout`` is stuck). A
    callee's wrapper run may still be retrying a callback to a caller that was down (its
    backoff) when the caller has its result already (by polling)."""
    began = time.monotonic()
    while True:
        live = [r.workflow_id for prefix in prefixes
                for r in await client.list(id_prefix=prefix, limit=10)
                if not r.status.is_terminal]
        if not live:
            return round(time.monotonic() - began, 2)
        assert time.monotonic() - began < timeout, f"stuck: {live[:5]}"
        await asyncio.sleep(0.1)
