"""PostgreSQL benchmark: the core workloads on PostgreSQL, worker-process scaling, DBOS.

The server is a throwaway cluster made with the machine's ``initdb``/``pg_ctl`` (fsync on,
as the tests run it), or ``--url``. Every measurement gets a schema of its own and runs in
fresh subprocesses, after a warm-up workflow in the same process.

* ``sequential``: 1 workflow x N no-op async steps (default 200), embedded worker: wall
  time / N, and the median step cycle (step body to next step body).
* ``throughput``: W x S (default 1000 x 10) started together by an embedded engine (one
  process that starts and executes): steps/s.
* ``processes``: the same W x S started by a client-only process, executed by 1, 2 and 4
  worker processes (``--procs``); wall from the first start until the last run completed
  (seen by polling the runs table).
* DBOS (``dbos`` package, when installed) on the same server, its system database in a
  fresh database per repeat: sequential and throughput (``bench/peer_dbos_pg.py``).

    python bench/bench_postgres.py                  # all, 3 repeats
    python bench/bench_postgres.py --tiny --no-peers  # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER = HERE / "peer_dbos_pg.py"
_STAMPS: list[float] = []


def _define() -> Any:
    import duro

    stamps, pc = _STAMPS, time.perf_counter

    @duro.step
    async def pg_noop(i: int) -> int:
        stamps.append(pc())
        return i

    @duro.workflow(name="pg_bench")
    async def pg_bench(n: int) -> int:
        for i in range(n):
            await pg_noop(i)
        return n

    return pg_bench


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def _fresh(url: str) -> str:
    return _with_schema(url, f"bench_{uuid.uuid4().hex[:10]}")


# -- children ----------------------------------------------------------------------------


async def _embedded(url: str, workload: str, steps: int, workflows: int) -> dict[str, Any]:
    import duro

    wf = _define()
    async with duro.Engine(_fresh(url)) as engine:  # warm-up
        await asyncio.gather(*(h.result(timeout=60) for h in
                               await asyncio.gather(*(engine.start(wf, 3) for _ in range(3)))))
    _STAMPS.clear()
    out: dict[str, Any] = {"workload": workload}
    async with duro.Engine(_fresh(url)) as engine:
        store: Any = engine.store
        before = store.write_stats
        t0 = time.perf_counter()
        if workload == "sequential":
            result = await (await engine.start(wf, steps)).result(timeout=600)
            wall = time.perf_counter() - t0
            assert result == steps
            cycles = [b - a for a, b in itertools.pairwise(_STAMPS)]
            out.update(steps=steps, wall_s=wall, per_step_ms=wall / steps * 1e3,
                       median_cycle_ms=statistics.median(cycles) * 1e3)
        else:
            handles = await asyncio.gather(*(engine.start(wf, steps) for _ in range(workflows)))
            assert all(r == steps for r in await asyncio.gather(
                *(h.result(timeout=600) for h in handles)))
            wall = time.perf_counter() - t0
            out.update(workflows=workflows, steps_per_workflow=steps, wall_s=wall,
                       steps_per_s=workflows * steps / wall, workflows_per_s=workflows / wall)
        after = store.write_stats
        out["write_transactions"] = after[0] - before[0]
        out["write_operations"] = after[1] - before[1]
    return out


async def _client(url: str, steps: int, workflows: int) -> dict[str, Any]:
    """Start W runs (no worker here) and wait until the workers completed them all."""
    import psycopg

    import duro

    wf = _define()
    schema = url.split("schema=")[1].split("&")[0]
    async with duro.Engine(url, worker=False) as client, \
            await psycopg.AsyncConnection.connect(url.split("?")[0], autocommit=True) as conn:
        t0 = time.perf_counter()
        await asyncio.gather(*(client.start(wf, steps) for _ in range(workflows)))
        started = time.perf_counter() - t0
        while True:
            cur = await conn.execute(f'SELECT count(*) FROM "{schema}".runs '
                                     f"WHERE status = 'completed'")
            row = await cur.fetchone()
            if row and row[0] >= workflows:
                break
            if time.perf_counter() - t0 > 600:
                raise TimeoutError("runs did not complete in 600 s")
            await asyncio.sleep(0.01)
        wall = time.perf_counter() - t0
    return {"workflows": workflows, "steps_per_workflow": steps, "wall_s": wall,
            "all_started_s": started, "steps_per_s": workflows * steps / wall}


async def _worker(url: str) -> None:
    import duro

    wf = _define()
    async with duro.Engine(url, workflows=[wf]):
        print(json.dumps({"ready": os.getpid()}), flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


# -- parent --------------------------------------------------------------------------------


def _py(*args: str, timeout: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:2]} exited {proc.returncode}: {proc.stderr[-3000:]}")
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr[-2000:])
    obj: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return obj


def _processes(url: str, n: int, steps: int, workflows: int, timeout: float) -> dict[str, Any]:
    target = _fresh(url)
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child-worker",
                               target], stdout=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(n)]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if "ready" not in line:
                raise RuntimeError(f"worker did not start: {line!r}")
        res = _py("--child-client", target, "--wf-steps", str(steps), "--workflows",
                  str(workflows), timeout=timeout)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    res["worker_processes"] = n
    return res


def _peer(url: str, workload: str, steps: int, workflows: int, repeat: int,
          timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(PEER), url, workload, "--steps", str(steps), "--repeat",
           str(repeat)]
    if workload == "throughput":
        cmd += ["--workflows", str(workflows)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        obj: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return obj
    except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return {"peer": "dbos", "error": repr(exc)}


def _med(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="an existing server (default: a throwaway cluster)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workflows", type=int, default=1000)
    ap.add_argument("--wf-steps", type=int, default=10)
    ap.add_argument("--procs", default="1,2,4", help="worker-process counts")
    ap.add_argument("--tiny", action="store_true", help="smoke sizes, 1 repeat")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--timeout", type=float, default=1200.0)
    ap.add_argument("--child", choices=("sequential", "throughput"), help=argparse.SUPPRESS)
    ap.add_argument("--child-client", help=argparse.SUPPRESS)
    ap.add_argument("--child-worker", help=argparse.SUPPRESS)
    ap.add_argument("--child-url", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        steps = args.steps if args.child == "sequential" else args.wf_steps
        print(json.dumps(asyncio.run(_embedded(args.child_url, args.child, steps,
                                               args.workflows))))
        return 0
    if args.child_client:
        print(json.dumps(asyncio.run(_client(args.child_client, args.wf_steps,
                                             args.workflows))))
        return 0
    if args.child_worker:
        asyncio.run(_worker(args.child_worker))
        return 0

    if args.tiny:
        args.steps, args.workflows, args.wf_steps, args.repeat = 5, 10, 2, 1
    cluster = None
    url = args.url
    if url is None:
        sys.path.insert(0, str(ROOT))
        from tests.pg import Cluster

        cluster = Cluster(local=True).start()
        url = cluster.url
    out: dict[str, Any] = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "loadavg_at_start": os.getloadavg()},
        "server": "throwaway cluster (fsync on, shared_buffers 32MB)" if cluster else "--url",
        "sizes": {"steps": args.steps, "workflows": args.workflows,
                  "wf_steps": args.wf_steps, "repeat": args.repeat},
        "duro": {}, "dbos": {}}
    try:
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            out["server_version"] = row[0] if row else None
            row = conn.execute("SHOW fsync").fetchone()
            out["fsync"] = row[0] if row else None
        for workload in ("sequential", "throughput"):
            runs = [_py("--child", workload, "--child-url", url, "--steps", str(args.steps),
                        "--wf-steps", str(args.wf_steps), "--workflows", str(args.workflows),
                        timeout=args.timeout) for _ in range(args.repeat)]
            out["duro"][workload] = {"runs": runs}
            for key in ("per_step_ms", "median_cycle_ms", "steps_per_s"):
                if key in runs[0]:
                    out["duro"][workload][f"median_{key}"] = _med(runs, key)
            print(f"duro {workload}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in out["duro"][workload].items()
                if k.startswith("median")), file=sys.stderr, flush=True)
        procs = {}
        for n in [int(x) for x in args.procs.split(",") if x]:
            runs = [_processes(url, n, args.wf_steps, args.workflows, args.timeout)
                    for _ in range(args.repeat)]
            procs[n] = {"runs": runs, "median_steps_per_s": _med(runs, "steps_per_s")}
            print(f"duro {n} worker process(es): {procs[n]['median_steps_per_s']:,.0f} steps/s",
                  file=sys.stderr, flush=True)
        out["duro"]["processes"] = procs
        if not args.no_peers:
            for workload in ("sequential", "throughput"):
                steps = args.steps if workload == "sequential" else args.wf_steps
                out["dbos"][workload] = _peer(url, workload, steps, args.workflows,
                                              args.repeat, args.timeout)
    finally:
        if cluster is not None:
            cluster.stop()

    d, p = out["duro"], out["dbos"]
    w, s = args.workflows, args.wf_steps
    rows = [
        (f"sequential 1x{args.steps}: wall/step", f"{d['sequential']['median_per_step_ms']:.3f} ms",
         _peer_cell(p.get("sequential"), "median_per_step_ms", "ms")),
        ("sequential: step cycle (median)", f"{d['sequential']['median_median_cycle_ms']:.3f} ms",
         _peer_cell(p.get("sequential"), "median_step_call_ms", "ms")),
        (f"throughput {w}x{s}, one process (embedded)",
         f"{d['throughput']['median_steps_per_s']:,.0f} steps/s",
         _peer_cell(p.get("throughput"), "median_steps_per_s", "steps/s")),
    ]
    for n, r in d["processes"].items():
        rows.append((f"throughput {w}x{s}, client + {n} worker process(es)",
                     f"{r['median_steps_per_s']:,.0f} steps/s", "-"))
    width = max(len(r[0]) for r in rows)
    print(f"\nPostgreSQL {out.get('server_version')} (fsync {out.get('fsync')}) | "
          f"{out['machine']['cpus']} CPUs | medians of {args.repeat}")
    print(f"{'workload'.ljust(width)} | duro | DBOS")
    for name, dv, pv in rows:
        print(f"{name.ljust(width)} | {dv} | {pv}")
    path = Path(args.json) if args.json else HERE / "results" / \
        f"postgres-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"JSON: {path}")
    return 0


def _peer_cell(res: dict[str, Any] | None, key: str, unit: str) -> str:
    if not res:
        return "not run"
    if "error" in res:
        return str(res["error"])[:60]
    value = res.get(key)
    if value is None:
        return "-"
    return f"{value:.3f} {unit}" if unit == "ms" else f"{value:,.0f} {unit}"


if __name__ == "__main__":
    sys.exit(main())
