"""Core benchmark: duro's per-step overhead and throughput, next to DBOS on SQLite.

Two workloads, each on a fresh SQLite file (WAL, ``synchronous=FULL``, duro's defaults):

* ``sequential``: 1 workflow x N no-op steps (default 200). Reports wall time from
  ``engine.start()`` to ``handle.result()`` divided by N, and the median step *cycle*: every
  no-op step appends ``time.perf_counter()`` to a list in the benchmark process (steps may
  read the clock; workflow code may not), and consecutive differences are the time from
  one step's body to the next one's (record, commit, resume the workflow, schedule).
* ``throughput``: W workflows x S no-op steps (default 1000 x 10), all started together
  with ``asyncio.gather(engine.start(...))``. Reports steps/s (W*S / wall from the first
  start to the last result), workflows/s, and the store's write batching
  (``engine.store.write_stats``: transactions, operations).

Every duro measurement runs in its own subprocess (fresh interpreter, Engine and database),
after a small warm-up workflow on a throwaway database in that same process. The DBOS
peer (``bench/peer_dbos.py``) runs as a subprocess too, when ``dbos`` is importable, with
its databases under the same temporary parent directory (same filesystem).

    python bench/bench_core.py                      # async steps, 3 repeats, DBOS too
    python bench/bench_core.py --sync-steps         # also sync no-op steps (thread pool)
    python bench/bench_core.py --tiny --no-peers    # CI smoke run (seconds)

Results: a table on stdout, and JSON in ``bench/results/core-<timestamp>.json`` (``--json``).
In the table, ``ratio`` is how many times better duro is (DBOS time / duro time, or duro
rate / DBOS rate); above 1 means duro is ahead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _sysinfo import fs_type  # bench/ is on sys.path when a script here runs

HERE = Path(__file__).resolve().parent
PEER_DBOS = HERE / "peer_dbos.py"
MODES = ("async", "sync")
WORKLOADS = ("sequential", "throughput")

# perf_counter stamps taken by the no-op steps of the sequential workflow (child only).
_STAMPS: list[float] = []


# -- child: one measurement in a fresh process ------------------------------------------


def _define_workflows() -> dict[str, Any]:
    """Register the benchmark's workflows and steps (child process only)."""
    import duro

    stamps = _STAMPS
    pc = time.perf_counter

    @duro.step
    async def noop_async(i: int) -> int:
        stamps.append(pc())
        return i

    @duro.step
    def noop_sync(i: int) -> int:
        stamps.append(pc())
        return i

    @duro.workflow(name="bench_async")
    async def bench_async(n: int) -> int:
        for i in range(n):
            await noop_async(i)
        return n

    @duro.workflow(name="bench_sync")
    async def bench_sync(n: int) -> int:
        for i in range(n):
            await noop_sync(i)
        return n

    return {"async": bench_async, "sync": bench_sync}


def _quantile(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(q * len(ys)))]


async def _measure(
    workload: str, mode: str, steps: int, workflows: int, db_dir: str, timeout: float
) -> dict[str, Any]:
    import duro

    wf = _define_workflows()[mode]

    # Warm-up on a throwaway database, so first-call costs (imports inside duro, code
    # paths, thread pools) are not billed to the measurement; the peer's repeats after
    # its first are warm too.
    async with duro.Engine(f"sqlite:///{os.path.join(db_dir, 'warmup.db')}") as engine:
        hs = await asyncio.gather(*(engine.start(wf, 3) for _ in range(3)))
        await asyncio.gather(*(h.result(timeout=timeout) for h in hs))
    _STAMPS.clear()

    db = os.path.join(db_dir, "bench.db")
    out: dict[str, Any] = {"workload": workload, "mode": mode}
    async with duro.Engine(f"sqlite:///{db}") as engine:
        store: Any = engine.store
        out["synchronous"] = getattr(store, "synchronous", None)
        before = getattr(store, "write_stats", (0, 0))
        if workload == "sequential":
            t0 = time.perf_counter()
            handle = await engine.start(wf, steps)
            result = await handle.result(timeout=timeout)
            wall = time.perf_counter() - t0
            assert result == steps, result
            assert len(_STAMPS) == steps, (len(_STAMPS), steps)
            cycles = [b - a for a, b in itertools.pairwise(_STAMPS)]
            out.update(
                steps=steps,
                wall_s=wall,
                per_step_ms=wall / steps * 1e3,
                median_cycle_ms=statistics.median(cycles) * 1e3 if cycles else None,
                p90_cycle_ms=_quantile(cycles, 0.9) * 1e3 if cycles else None,
                max_cycle_ms=max(cycles) * 1e3 if cycles else None,
            )
        else:
            t0 = time.perf_counter()
            handles = await asyncio.gather(*(engine.start(wf, steps) for _ in range(workflows)))
            started = time.perf_counter() - t0
            results = await asyncio.gather(*(h.result(timeout=timeout) for h in handles))
            wall = time.perf_counter() - t0
            assert all(r == steps for r in results)
            out.update(
                workflows=workflows,
                steps_per_workflow=steps,
                wall_s=wall,
                all_started_s=started,
                steps_per_s=workflows * steps / wall,
                workflows_per_s=workflows / wall,
            )
        after = getattr(store, "write_stats", (0, 0))
        txns, ops = after[0] - before[0], after[1] - before[1]
        out["write_transactions"] = txns
        out["write_operations"] = ops
        out["ops_per_transaction"] = ops / txns if txns else None
    with sqlite3.connect(db) as con:
        out["journal_mode"] = con.execute("PRAGMA journal_mode").fetchone()[0]
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _child(args: argparse.Namespace) -> int:
    db_dir = tempfile.mkdtemp(prefix="duro_", dir=args.dir)
    try:
        res = asyncio.run(
            _measure(args.child, args.mode, args.child_steps, args.workflows, db_dir,
                     args.timeout)
        )
    finally:
        shutil.rmtree(db_dir, ignore_errors=True)
    print(json.dumps(res), flush=True)
    return 0


# -- parent: orchestration, peers, table ---------------------------------------------------


def _last_json_line(stdout: str) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError("no output")
    obj: dict[str, Any] = json.loads(lines[-1])
    return obj


def _run_child(
    workload: str, mode: str, steps: int, workflows: int, parent: str, timeout: float
) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", workload, "--mode", mode,
           "--child-steps", str(steps), "--workflows", str(workflows), "--dir", parent,
           "--timeout", str(timeout)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    if proc.stderr.strip():
        # duro logs warnings to stderr; surface them, they are part of the story.
        sys.stderr.write(f"[duro {workload}/{mode} stderr]\n{proc.stderr[-4000:]}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"duro {workload}/{mode} child exited {proc.returncode}")
    return _last_json_line(proc.stdout)


def _run_peer(
    workload: str, mode: str, steps: int, workflows: int, repeat: int, parent: str,
    timeout: float,
) -> dict[str, Any]:
    cmd = [sys.executable, str(PEER_DBOS), workload, "--steps", str(steps),
           "--repeat", str(repeat), "--dir", parent, "--mode", mode]
    if workload == "throughput":
        cmd += ["--workflows", str(workflows)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"peer": "dbos", "error": f"timed out after {timeout:.0f}s"}
    try:
        res = _last_json_line(proc.stdout)
    except (RuntimeError, json.JSONDecodeError):
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"peer": "dbos", "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    if proc.returncode != 0:
        res.setdefault("error", f"exit {proc.returncode}")
    return res


def _dbos_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("dbos") is not None


def _summarize(workload: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float | None:
        xs = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(xs) if xs else None

    out: dict[str, Any] = {"runs": runs}
    if workload == "sequential":
        out["median_per_step_ms"] = med("per_step_ms")
        out["median_cycle_ms"] = med("median_cycle_ms")
    else:
        out["median_steps_per_s"] = med("steps_per_s")
        out["median_workflows_per_s"] = med("workflows_per_s")
    out["median_ops_per_transaction"] = med("ops_per_transaction")
    out["median_write_transactions"] = med("write_transactions")
    out["median_write_operations"] = med("write_operations")
    return out


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _machine(parent: str) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        duro_version: str | None = version("duro")
    except PackageNotFoundError:
        duro_version = None
    try:
        load: list[float] | None = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "duro": duro_version,
        "db_filesystem": fs_type(parent),
        "loadavg_at_start": load,
    }


def _fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if unit == "ms":
        return f"{x:.3f} ms"
    if unit == "x":
        return f"{x:.1f}"
    return f"{x:,.0f} {unit}"


def _table(results: dict[str, Any], sizes: dict[str, int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n, w, s = sizes["steps"], sizes["workflows"], sizes["wf_steps"]
    for mode, by_workload in results["duro"].items():
        peer = results.get("peers", {}).get("dbos", {}).get(mode, {})
        tag = "async steps" if mode == "async" else "sync steps"
        specs = [
            ("sequential", f"sequential 1x{n}, {tag}: wall/step", "median_per_step_ms",
             "median_per_step_ms", "ms", True),
            ("sequential", f"sequential 1x{n}, {tag}: step cycle (median)", "median_cycle_ms",
             "median_step_call_ms", "ms", True),
            ("throughput", f"throughput {w}x{s}, {tag}: steps/s", "median_steps_per_s",
             "median_steps_per_s", "steps/s", False),
            ("throughput", f"throughput {w}x{s}, {tag}: workflows/s", "median_workflows_per_s",
             "median_workflows_per_s", "wf/s", False),
        ]
        for workload, label, dkey, pkey, unit, lower_better in specs:
            if workload not in by_workload:
                continue
            d = by_workload[workload].get(dkey)
            p_res = peer.get(workload)
            p: float | None = None
            p_note = "not run"
            if isinstance(p_res, dict):
                if "error" in p_res:
                    p_note = str(p_res["error"])
                else:
                    p = p_res.get(pkey)
            ratio = None
            if d and p:
                ratio = p / d if lower_better else d / p
            rows.append({"workload": label, "unit": unit, "duro": d, "dbos": p,
                         "dbos_note": None if p is not None else p_note, "ratio": ratio})
        for workload in WORKLOADS:
            if workload in by_workload:
                opt = by_workload[workload].get("median_ops_per_transaction")
                txns = by_workload[workload].get("median_write_transactions")
                ops = by_workload[workload].get("median_write_operations")
                rows.append({
                    "workload": f"{workload}, {tag}: write batching (ops/txn)",
                    "unit": "x", "duro": opt, "dbos": None, "dbos_note": "n/a",
                    "ratio": None, "detail": f"{ops:.0f} ops in {txns:.0f} txns"
                    if ops is not None and txns is not None else None,
                })
    return rows


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = ("workload", "duro", "DBOS", "ratio")
    body = []
    for r in rows:
        duro_cell = _fmt(r["duro"], r["unit"])
        if r.get("detail"):
            duro_cell += f" ({r['detail']})"
        dbos_cell = _fmt(r["dbos"], r["unit"]) if r["dbos"] is not None else r["dbos_note"]
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "-"
        body.append((r["workload"], duro_cell, dbos_cell, ratio))
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(4)]
    line = " | ".join(h.ljust(widths[i]) for i, h in enumerate(header))
    print(line)
    print("-|-".join("-" * wd for wd in widths))
    for row in body:
        print(" | ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="fresh-process runs per duro figure")
    ap.add_argument("--steps", type=int, default=200, help="steps of the sequential workflow")
    ap.add_argument("--workflows", type=int, default=1000, help="throughput: workflows")
    ap.add_argument("--wf-steps", type=int, default=10, help="throughput: steps per workflow")
    ap.add_argument("--tiny", action="store_true",
                    help="smoke sizes: 1x5 sequential, 10x2 throughput, 1 repeat")
    ap.add_argument("--sync-steps", action="store_true",
                    help="also run every workload with sync no-op steps (thread pool)")
    ap.add_argument("--workload", choices=WORKLOADS, action="append",
                    help="run only this workload (repeatable; default both)")
    ap.add_argument("--no-peers", action="store_true", help="skip DBOS")
    ap.add_argument("--json", default=None,
                    help="where to write results (default bench/results/core-<timestamp>.json)")
    ap.add_argument("--dir", default=None,
                    help="parent of the temporary database dirs (default $TMPDIR or /tmp)")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds allowed per measurement subprocess")
    # Internal: one measurement in this (fresh) process.
    ap.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=MODES, default="async", help=argparse.SUPPRESS)
    ap.add_argument("--child-steps", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        return _child(args)

    if args.tiny:
        args.steps, args.workflows, args.wf_steps, args.repeat = 5, 10, 2, 1
    workloads = args.workload or list(WORKLOADS)
    modes = ["async", "sync"] if args.sync_steps else ["async"]
    sizes = {"steps": args.steps, "workflows": args.workflows, "wf_steps": args.wf_steps}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = Path(args.json) if args.json else HERE / "results" / f"core-{stamp}.json"

    parent = tempfile.mkdtemp(prefix="duro-bench-", dir=args.dir)
    peers_on = not args.no_peers
    dbos_ok = peers_on and _dbos_importable()
    results: dict[str, Any] = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "timestamp": stamp,
        "machine": _machine(parent),
        "sizes": {**sizes, "repeat": args.repeat},
        "isolation": "one subprocess per duro measurement (fresh interpreter, Engine, db), "
                     "after a warm-up workflow on a throwaway db in the same process",
        "duro": {},
        "peers": {},
    }
    t_begin = time.perf_counter()
    try:
        for mode in modes:
            results["duro"][mode] = {}
            for workload in workloads:
                steps = args.steps if workload == "sequential" else args.wf_steps
                runs = []
                for i in range(args.repeat):
                    t0 = time.perf_counter()
                    r = _run_child(workload, mode, steps, args.workflows, parent, args.timeout)
                    runs.append(r)
                    fig = (f"{r['per_step_ms']:.3f} ms/step, cycle {r['median_cycle_ms']:.3f} ms"
                           if workload == "sequential" and r.get("median_cycle_ms") is not None
                           else f"{r.get('steps_per_s', 0):,.0f} steps/s")
                    print(f"duro {workload} [{mode}] run {i + 1}/{args.repeat}: {fig}, "
                          f"{r['write_operations']} ops / {r['write_transactions']} txns "
                          f"({time.perf_counter() - t0:.1f}s)", file=sys.stderr, flush=True)
                results["duro"][mode][workload] = _summarize(workload, runs)
                if peers_on:
                    peer = results["peers"].setdefault("dbos", {}).setdefault(mode, {})
                    if not dbos_ok:
                        peer[workload] = {"peer": "dbos", "error": "not installed"}
                        continue
                    t0 = time.perf_counter()
                    peer[workload] = _run_peer(workload, mode, steps, args.workflows,
                                               args.repeat, parent, args.timeout)
                    print(f"dbos {workload} [{mode}]: done ({time.perf_counter() - t0:.1f}s)",
                          file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(parent, ignore_errors=True)

    results["elapsed_s"] = time.perf_counter() - t_begin
    with contextlib.suppress(OSError):
        results["machine"]["loadavg_at_end"] = list(os.getloadavg())
    rows = _table(results, sizes)
    results["table"] = rows
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")

    m = results["machine"]
    print(f"\nduro {m['duro']} | Python {m['python']} | SQLite {m['sqlite']} | "
          f"{m['cpus']} CPUs ({m['cpu_model']}) | db on {m['db_filesystem']} | "
          f"medians of {args.repeat}")
    _print_table(rows)
    print("\nratio: how many times better duro is (DBOS time / duro time, "
          "or duro rate / DBOS rate)")
    print(f"JSON: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
