"""Durable RPC benchmark (issue 20): a no-op remote operation between two deployments on
this machine.

Two ``duro serve --worker`` processes, each with its own database (SQLite files by
default; the callee on PostgreSQL with ``--url``): the caller's workflow ``bench.call``
does ``await duro.call(CALLEE, "bench.noop")``; the callee exposes ``bench.noop`` and
posts its outcome back by the signed callback (polling is the fallback: the endpoint's
default ``poll_interval``, 10 s, so nearly every result comes by callback). The load is
this process, over HTTP to the caller: start a run (``POST /v1/runs``), wait its result
(``GET /v1/runs/{id}/result?wait=``).

- **round trip**: ``--calls`` runs one after another; each one's latency (start →
  result) p50/p99, next to the same for ``bench.local`` (a no-op workflow on the caller:
  what a run costs without the call), so the difference is the call's.
- **throughput**: ``--total`` runs with ``--concurrency`` callers in flight (each starts
  a run and waits its result, then the next): calls/s, and their latency p50/p99.

No timed asserts: a table, and JSON with ``--json``.

    python bench/bench_rpc.py                          # both on SQLite
    python bench/bench_rpc.py --url postgresql://...   # the callee on PostgreSQL
    python bench/bench_rpc.py --tiny                   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
READY = re.compile(r"duro serve ready: http://")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _deployment(db: str, port: int, env: dict[str, str]) -> Iterator[str]:
    """``duro serve _rpc_app --worker`` on ``db`` at ``port``; its base URL."""
    environ = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(HERE)])
    environ.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", db, "serve", "_rpc_app", "--worker",
         "--port", str(port)], env=environ, cwd=HERE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not READY.search(line):
        proc.kill()
        raise RuntimeError(f"duro serve did not start: {line}{proc.stdout.read()}")
    # Keep reading its output: a full pipe would block the server.
    threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=30)


async def _one(http: httpx.AsyncClient, workflow: str) -> float:
    """Start a run of ``workflow`` at the caller and wait its result: seconds taken."""
    run_id = f"b-{uuid.uuid4().hex[:12]}"
    began = time.perf_counter()
    started = await http.post("/v1/runs", json={"workflow": workflow, "id": run_id})
    assert started.status_code == 202, started.text
    done = await http.get(f"/v1/runs/{run_id}/result", params={"wait": "60"})
    assert done.status_code == 200 and done.json()["result"] == 1, done.text
    return time.perf_counter() - began


def _stats(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
                            2)}


async def _measure(caller: str, args: argparse.Namespace) -> dict[str, Any]:
    # Idle connections dropped before uvicorn drops them (5 s): no request races a close.
    limits = httpx.Limits(max_connections=args.concurrency + 4, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=caller, timeout=90, limits=limits) as http:
        for _ in range(args.warmup):
            await _one(http, "bench.call")
        local = [await _one(http, "bench.local") for _ in range(args.calls)]
        remote = [await _one(http, "bench.call") for _ in range(args.calls)]
        local_load = await _loaded(http, "bench.local", args)
        remote_load = await _loaded(http, "bench.call", args)
    return {"round_trip": _stats(remote), "local_run": _stats(local),
            "throughput": remote_load, "local_throughput": local_load}


async def _loaded(http: httpx.AsyncClient, workflow: str, args: argparse.Namespace
                  ) -> dict[str, Any]:
    """``args.total`` runs of ``workflow``, ``args.concurrency`` callers in flight."""
    left = args.total
    latencies: list[float] = []

    async def caller_loop() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            latencies.append(await _one(http, workflow))

    began = time.perf_counter()
    await asyncio.gather(*(caller_loop() for _ in range(args.concurrency)))
    wall = time.perf_counter() - began
    return {"concurrency": args.concurrency, "runs": args.total,
            "per_s": round(args.total / wall, 1), **_stats(latencies)}


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=None, help="the callee's PostgreSQL (default SQLite)")
    ap.add_argument("--calls", type=int, default=100, help="sequential round trips")
    ap.add_argument("--total", type=int, default=500, help="calls of the throughput run")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--tiny", action="store_true", help="a smoke run")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    if args.tiny:
        args.calls, args.total, args.concurrency, args.warmup = 5, 20, 5, 1
    secret = {"DURO_CALLBACK_SECRET": uuid.uuid4().hex}
    with tempfile.TemporaryDirectory() as tmp:
        callee_db = (_with_schema(args.url, f"bench_rpc_{uuid.uuid4().hex[:8]}")
                     if args.url else f"sqlite:///{tmp}/callee.db")
        caller_port = _port()
        with _deployment(callee_db, _port(), secret) as callee, _deployment(
                f"sqlite:///{tmp}/caller.db", caller_port,
                {**secret, "CALLEE_URL": callee,
                 "CALLER_URL": f"http://127.0.0.1:{caller_port}"}) as caller:
            out = asyncio.run(_measure(caller, args))
    out["callee_store"] = "postgresql" if args.url else "sqlite"
    out["cpus"] = os.cpu_count()
    rt, local, tp, ltp = (out["round_trip"], out["local_run"], out["throughput"],
                          out["local_throughput"])
    print(f"{'measure':<34}{'p50 ms':>10}{'p99 ms':>10}{'calls/s':>10}")
    print(f"{'local no-op run (baseline)':<34}{local['p50_ms']:>10}{local['p99_ms']:>10}")
    print(f"{'remote no-op call, end to end':<34}{rt['p50_ms']:>10}{rt['p99_ms']:>10}")
    for what, row in ((f"{args.concurrency} local runs in flight", ltp),
                      (f"{args.concurrency} remote calls in flight", tp)):
        print(f"{what:<34}{row['p50_ms']:>10}{row['p99_ms']:>10}{row['per_s']:>10}")
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
