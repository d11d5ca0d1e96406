"""HTTP start benchmark: ``POST /v1/runs`` → 202 against a real ``duro serve``.

The server is ``duro serve`` in a process of its own, without modules and without a
worker (``--no-worker`` is what is measured: the start path alone; the runs it stores stay
pending). The load comes from another process (so that the client's CPU is not the
server's): ``--clients`` keep-alive connections (default 32), each a closed loop of
starts written as raw HTTP/1.1 on asyncio streams (no HTTP library: the client costs a
few microseconds a request, not the hundreds of an HTTP client). Each request starts a
new run (its own id). After a warm-up on every connection, ``--requests`` starts are
timed: the latency of each (request written → response read), p50 and p99, and
starts/s (requests / wall time). Two loads: a closed loop (each connection sends its
next start when the last one is answered: the most the server does, and with 32 in
flight a latency of 32 / throughput by Little's law), and open loops at ``--rates``
(starts/s offered, spread evenly over the connections: the latency at that load,
counted from each start's turn). Also the CPU seconds the server and the load generator
spent, per start, to show which one was busy.

Each repeat uses a fresh database (a new SQLite file; a new PostgreSQL schema with
``--url``) and a fresh server; the table shows medians over repeats.

    python bench/bench_http.py                        # SQLite, 3 repeats
    python bench/bench_http.py --url postgresql://...  # and PostgreSQL
    python bench/bench_http.py --tiny                  # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
READY = re.compile(r"duro serve ready: http://([\d.]+):(\d+)")
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# -- the load generator (a child process) ---------------------------------------------------


async def _connection(host: str, port: int, prefix: str, warmup: int, timed: int,
                      gate: asyncio.Event, ready: list[int], out: list[float],
                      interval: float | None, phase: float, token: str | None) -> None:
    """One keep-alive connection: ``warmup`` starts, then (once ``gate`` opens) ``timed``
    starts, one after another (closed loop), or each at its turn every ``interval``
    seconds (open loop: its latency counts from its turn, so a late send counts too)."""
    reader, writer = await asyncio.open_connection(host, port)
    counter = 0
    auth = b"" if token is None else b"Authorization: Bearer %s\r\n" % token.encode()
    # The server's own name (on loopback without tokens duro serve answers to no other).
    named = f"Host: {host}:{port}\r\n".encode()

    async def start(due: float | None = None) -> float:
        nonlocal counter
        counter += 1
        body = b'{"workflow":"bench_http.noop","id":"%s-%d","args":[1]}' % (
            prefix.encode(), counter)
        request = (b"POST /v1/runs HTTP/1.1\r\n%s%s"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (named, auth, len(body), body))
        t0 = time.perf_counter() if due is None else due
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = _LENGTH.search(head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        took = time.perf_counter() - t0
        if head[9:12] != b"202":
            raise RuntimeError(f"expected 202, got {head[:40]!r}")
        return took

    for _ in range(warmup):
        await start()
    ready.append(1)
    await gate.wait()
    if interval is None:
        for _ in range(timed):
            out.append(await start())
    else:
        begin = time.perf_counter() + phase
        for k in range(timed):
            due = begin + k * interval
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            out.append(await start(due))
    writer.close()


async def _load(base: str, clients: int, requests: int, warmup: int,
                rate: float | None, token: str | None = None) -> dict[str, Any]:
    match = re.match(r"http://([\d.]+):(\d+)", base)
    assert match is not None
    host, port = match.group(1), int(match.group(2))
    gate = asyncio.Event()
    ready: list[int] = []
    latencies: list[float] = []
    per = max(1, requests // clients)
    interval = None if rate is None else clients / rate  # each connection's share
    tasks = [asyncio.ensure_future(_connection(
        host, port, f"c{i}-{uuid.uuid4().hex[:6]}", warmup, per, gate, ready, latencies,
        interval, 0.0 if interval is None else interval * i / clients, token))
        for i in range(clients)]
    while len(ready) < clients:
        await asyncio.sleep(0.001)
        for t in tasks:
            if t.done():
                t.result()  # raise a connection's failure now
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    gate.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()
    n = len(latencies)
    return {"requests": n, "clients": clients, "offered_per_s": rate, "wall_s": wall,
            "starts_per_s": n / wall,
            "p50_ms": latencies[n // 2] * 1e3,
            "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1e3,
            "max_ms": latencies[-1] * 1e3,
            "load_cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)}


# -- the parent ------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(db: str, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "duro", "--db", db, "serve", "--port", "0",
                             *extra], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = READY.search(line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"duro serve did not start: {line}{proc.stdout.read()}")
    return proc, f"http://{match.group(1)}:{match.group(2)}"


def _token(db: str) -> str:
    """A write token made in ``db`` (``duro token create``), for ``--auth``."""
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-m", "duro", "--db", db, "db", "migrate"], env=env,
                   cwd=ROOT, capture_output=True, timeout=60, check=True)
    made = subprocess.run([sys.executable, "-m", "duro", "--db", db, "token", "create",
                           "bench", "--scope", "write"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    return made.stdout.strip()


def _one(db: str, args: argparse.Namespace, rate: float | None) -> dict[str, Any]:
    extra = args.serve_args.split() if args.serve_args else []
    token = None
    if args.auth:
        token, extra = _token(db), [*extra, "--auth"]
    proc, base = _serve(db, extra)
    try:
        cpu0 = _cpu_seconds(proc.pid)
        load = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child-load", base,
             "--clients", str(args.clients), "--requests", str(args.requests),
             "--warmup", str(args.warmup), *(["--rate", str(rate)] if rate else []),
             *(["--child-token", token] if token else [])],
            capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
        server_cpu = _cpu_seconds(proc.pid) - cpu0
        if load.returncode != 0:
            raise RuntimeError(f"the load generator failed: {load.stderr[-3000:]}")
        out: dict[str, Any] = json.loads(load.stdout.strip().splitlines()[-1])
        total = out["requests"] + args.clients * args.warmup
        out["server_cpu_ms_per_start"] = server_cpu / total * 1e3
        out["load_cpu_ms_per_start"] = out["load_cpu_s"] / out["requests"] * 1e3
        return out
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("p50_ms", "p99_ms", "starts_per_s", "server_cpu_ms_per_start",
            "load_cpu_ms_per_start")
    return {"runs": runs, **{f"median_{k}": statistics.median(r[k] for r in runs)
                             for k in keys}}


def _row(name: str, s: dict[str, Any]) -> str:
    return (f"{name:<22}{s['median_p50_ms']:>9.2f}{s['median_p99_ms']:>9.2f}"
            f"{s['median_starts_per_s']:>10.0f}{s['median_server_cpu_ms_per_start']:>14.3f}"
            f"{s['median_load_cpu_ms_per_start']:>12.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="also PostgreSQL: a server URL (a fresh schema per run)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=6400, help="timed starts per run")
    ap.add_argument("--warmup", type=int, default=20, help="untimed starts per connection")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rates", default="2000",
                    help="open-loop offered rates (starts/s, comma-separated; '' for none) "
                         "measured besides the closed loop")
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--serve-args", default="", help="more arguments for duro serve")
    ap.add_argument("--synchronous", default=None, choices=("NORMAL", "FULL"),
                    help="SQLite's synchronous pragma (default: duro's, FULL): NORMAL "
                         "commits without an fsync (durable against a crash of the "
                         "process, not of the machine)")
    ap.add_argument("--tiny", action="store_true", help="smoke sizes, 1 repeat")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--auth", action="store_true",
                    help="serve with API tokens (duro serve --auth): each start carries a "
                         "token the server checks")
    ap.add_argument("--child-load", help=argparse.SUPPRESS)
    ap.add_argument("--child-token", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child_load:
        print(json.dumps(asyncio.run(_load(args.child_load, args.clients, args.requests,
                                           args.warmup, args.rate, args.child_token))))
        return 0
    if args.tiny:
        args.clients, args.requests, args.warmup, args.repeat = 4, 40, 2, 1
        args.rates = "200"
    out: dict[str, Any] = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "loadavg_at_start": os.getloadavg()},
        "server": "duro serve, no modules, no worker"
                  + (", API tokens" if args.auth else ""),
        "sizes": {"clients": args.clients, "requests": args.requests,
                  "warmup_per_client": args.warmup, "repeat": args.repeat},
        "stores": {}}
    with tempfile.TemporaryDirectory(prefix="bench_http_") as tmp:
        query = f"?synchronous={args.synchronous}" if args.synchronous else ""
        stores = {"sqlite": lambda i: f"sqlite:///{tmp}/run{i}.db{query}"}
        if args.url:
            stores["postgres"] = lambda i: _with_schema(args.url,
                                                        f"bench_http_{uuid.uuid4().hex[:10]}")
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
        for name, db in stores.items():
            for rate in [None, *rates]:
                runs = [_one(db(i), args, rate) for i in range(args.repeat)]
                load = "closed loop" if rate is None else f"{rate:g}/s offered"
                out["stores"][f"{name}, {load}"] = _summary(runs)
    print(f"HTTP start (POST /v1/runs -> 202), {args.clients} clients, {args.requests} "
          f"starts x {args.repeat} runs, medians; no worker"
          f"{'; API tokens' if args.auth else ''}")
    print(f"{'store, load':<22}{'p50 ms':>9}{'p99 ms':>9}{'starts/s':>10}{'server ms/st':>14}"
          f"{'load ms/st':>12}")
    for name, summary in out["stores"].items():
        print(_row(name, summary))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
