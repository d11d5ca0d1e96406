"""The floor under ``bench_http.py`` on this machine: the same load generator against
servers that do (almost) nothing, so that duro's own share of a start's latency shows.

Three servers, each in a process of its own, each answering ``POST`` with 202:

- ``echo``: raw HTTP on uvloop streams, no parsing beyond the content length, no
  storage: the generator's and the kernel's share (and the VM's wake-ups).
- ``asgi``: uvicorn (httptools, uvloop) with a bare ASGI app: what the server stack
  duro runs on costs.
- ``asgi+sqlite``: the same app storing one row per request in SQLite (WAL,
  ``synchronous=FULL``) with group commit on a writer thread, answering after the
  commit: the least a durable 202 costs with this stack.

    python bench/bench_http_floor.py                   # 1000/s, 2000/s and closed loop
    python bench/bench_http_floor.py --rates 2000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bench_http import _cpu_seconds

HERE = Path(__file__).resolve().parent
SERVERS = ("echo", "asgi", "asgi+sqlite")
_RESPONSE = (b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
             b"content-length: 2\r\n\r\n{}")


def _echo() -> None:
    import asyncio

    import uvloop

    async def handle(reader: Any, writer: Any) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                at = head.lower().find(b"content-length:")
                await reader.readexactly(int(head[at + 15:head.find(b"\r\n", at)]))
                writer.write(_RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        print(f"ready: http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    uvloop.run(main())


def _asgi(db: str | None) -> None:
    import asyncio

    import uvicorn

    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
    if db is not None:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, body BLOB)")

        def writer() -> None:  # group commit: everything queued, one transaction
            while True:
                batch = [jobs.get()]
                while True:
                    try:
                        batch.append(jobs.get_nowait())
                    except queue.Empty:
                        break
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO t (body) VALUES (?)", [(b,) for b, _, _ in batch])
                conn.execute("COMMIT")
                loop = batch[0][2]
                loop.call_soon_threadsafe(
                    lambda done=batch: [f.set_result(None) for _, f, _ in done])

        threading.Thread(target=writer, daemon=True).start()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if db is not None:
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            jobs.put((body, done, loop))
            await done
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"ready: http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, loop="uvloop",
                            http="httptools", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def _measure(server: str, rate: float | None, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_floor_") as tmp:
        proc = subprocess.Popen([sys.executable, __file__, "--child-server", server,
                                 "--child-db", f"{tmp}/floor.db"],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            base = proc.stdout.readline().split("ready: ")[1].strip()
            cpu0 = _cpu_seconds(proc.pid)
            load = subprocess.run(
                [sys.executable, str(HERE / "bench_http.py"), "--child-load", base,
                 "--clients", str(args.clients), "--requests", str(args.requests),
                 "--warmup", "20", *(["--rate", str(rate)] if rate else [])],
                capture_output=True, text=True, timeout=600, check=True)
            cpu = _cpu_seconds(proc.pid) - cpu0
            out: dict[str, Any] = json.loads(load.stdout.strip().splitlines()[-1])
            # As bench_http counts it: the server's CPU over every request (warm-up too).
            out["server_cpu_ms_per_start"] = cpu / (out["requests"] + 20 * args.clients) * 1e3
            return out
        finally:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1000,2000")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=6400)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child-server", choices=SERVERS, help=argparse.SUPPRESS)
    ap.add_argument("--child-db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_server == "echo":
        _echo()
        return 0
    if args.child_server:
        _asgi(args.child_db if args.child_server == "asgi+sqlite" else None)
        return 0
    rates: list[float | None] = [float(r) for r in args.rates.split(",") if r.strip()]
    rows = []
    print(f"The floor: {args.clients} clients, {args.requests} requests, bench_http's "
          f"load generator")
    print(f"{'server':<14}{'load':>14}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}"
          f"{'server ms/req':>15}")
    for server in SERVERS:
        for rate in [*rates, None]:
            out = _measure(server, rate, args)
            load = "closed loop" if rate is None else f"{rate:g}/s"
            rows.append({"server": server, "load": load, **out})
            print(f"{server:<14}{load:>14}{out['p50_ms']:>9.2f}{out['p99_ms']:>9.2f}"
                  f"{out['starts_per_s']:>9.0f}{out['server_cpu_ms_per_start']:>15.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
