"""Peer benchmark: DBOS (pip package ``dbos``) on a SQLite system database.

Standalone (stdlib + dbos). Meant to be run as a subprocess by duro's own
benchmark for comparison. Two workloads:

* ``sequential``: 1 workflow x N no-op steps; per-step latency in ms
  (wall time of the workflow / N, and the median of per-step durations
  timed with ``time.perf_counter`` around each step call).
* ``throughput``: W workflows x S no-op steps, all started together;
  steps/s and workflows/s from first start to last result.

Every run uses a fresh SQLite database in a new temporary directory, with
DBOS's default durability settings. Only one JSON object is written to
stdout (the last line); DBOS logs and everything else go to stderr.

    python bench/peer_dbos.py sequential --steps 200 --repeat 3
    python bench/peer_dbos.py throughput --workflows 1000 --steps 10 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from _sysinfo import fs_type  # bench/ is on sys.path when a script here runs

PEER = "dbos"

# Per-step durations recorded inside the sequential workflow (seconds).
_STEP_TIMES: list[float] = []


def _emit(obj: dict[str, Any], fd: int) -> None:
    """Write the single result line to the real stdout file descriptor."""
    os.write(fd, (json.dumps(obj) + "\n").encode())


def _register(dbos_cls: Any) -> dict[str, Callable[..., Any]]:
    """Define and register the benchmark workflows/steps with DBOS."""

    @dbos_cls.step()
    async def noop_step_async(i: int) -> int:
        return i

    @dbos_cls.step()
    def noop_step_sync(i: int) -> int:
        return i

    @dbos_cls.workflow()
    async def seq_wf_async(n: int) -> int:
        times = _STEP_TIMES
        pc = time.perf_counter
        for i in range(n):
            t0 = pc()
            await noop_step_async(i)
            times.append(pc() - t0)
        return n

    @dbos_cls.workflow()
    def seq_wf_sync(n: int) -> int:
        times = _STEP_TIMES
        pc = time.perf_counter
        for i in range(n):
            t0 = pc()
            noop_step_sync(i)
            times.append(pc() - t0)
        return n

    @dbos_cls.workflow()
    async def tp_wf_async(s: int) -> int:
        for i in range(s):
            await noop_step_async(i)
        return s

    @dbos_cls.workflow()
    def tp_wf_sync(s: int) -> int:
        for i in range(s):
            noop_step_sync(i)
        return s

    return {
        "seq_async": seq_wf_async,
        "seq_sync": seq_wf_sync,
        "tp_async": tp_wf_async,
        "tp_sync": tp_wf_sync,
    }


def _read_pragmas(dbos_cls: Any, db_path: str) -> dict[str, Any]:
    """Read SQLite PRAGMAs as DBOS's own pooled connections see them."""
    out: dict[str, Any] = {}
    try:
        from dbos._dbos import _get_dbos_instance

        engine = _get_dbos_instance()._sys_db.engine
        with engine.connect() as conn:
            for p in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys"):
                out[p] = conn.exec_driver_sql(f"PRAGMA {p}").scalar()
        out["source"] = "dbos engine connection"
    except (ImportError, AttributeError) as e:  # private API may move; use the file
        out["engine_error"] = repr(e)
        con = sqlite3.connect(db_path)
        try:
            out["journal_mode"] = con.execute("PRAGMA journal_mode").fetchone()[0]
            out["synchronous"] = con.execute("PRAGMA synchronous").fetchone()[0]
        finally:
            con.close()
        out["source"] = "fresh sqlite3 connection (synchronous is per-connection)"
    sync_names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    if isinstance(out.get("synchronous"), int):
        out["synchronous_name"] = sync_names.get(out["synchronous"], "?")
    return out


def _run_once(
    dbos_cls: Any,
    wfs: dict[str, Callable[..., Any]],
    workload: str,
    mode: str,
    steps: int,
    workflows: int,
    base_dir: str | None,
) -> dict[str, Any]:
    tmpdir = tempfile.mkdtemp(prefix="peer_dbos_", dir=base_dir)
    db_path = os.path.join(tmpdir, "dbos.sqlite")
    config: dict[str, Any] = {
        "name": "peer-dbos-bench",
        "system_database_url": f"sqlite:///{db_path}",
        "log_level": "WARNING",
    }
    try:
        dbos_cls(config=config)
        dbos_cls.launch()
        try:
            if workload == "sequential":
                res = _sequential(wfs, mode, steps)
            else:
                res = _throughput(dbos_cls, wfs, mode, workflows, steps)
            res["pragmas"] = _read_pragmas(dbos_cls, db_path)
        finally:
            dbos_cls.destroy(destroy_registry=False)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return res


def _sequential(wfs: dict[str, Callable[..., Any]], mode: str, n: int) -> dict[str, Any]:
    _STEP_TIMES.clear()
    if mode == "async":
        wf = wfs["seq_async"]

        async def go() -> float:
            t0 = time.perf_counter()
            r = await wf(n)
            dt = time.perf_counter() - t0
            assert r == n
            return dt

        wall = asyncio.run(go())
    else:
        wf = wfs["seq_sync"]
        t0 = time.perf_counter()
        r = wf(n)
        wall = time.perf_counter() - t0
        assert r == n
    assert len(_STEP_TIMES) == n, (len(_STEP_TIMES), n)
    return {
        "steps": n,
        "wall_s": wall,
        "per_step_ms": wall / n * 1e3,
        "median_step_ms": statistics.median(_STEP_TIMES) * 1e3,
        "p90_step_ms": _quantile(_STEP_TIMES, 0.9) * 1e3,
    }


def _throughput(
    dbos_cls: Any,
    wfs: dict[str, Callable[..., Any]],
    mode: str,
    w: int,
    s: int,
) -> dict[str, Any]:
    if mode == "async":
        wf = wfs["tp_async"]

        async def go() -> tuple[float, float]:
            t0 = time.perf_counter()
            handles = await asyncio.gather(
                *(dbos_cls.start_workflow_async(wf, s) for _ in range(w))
            )
            t_started = time.perf_counter() - t0
            results = await asyncio.gather(*(h.get_result() for h in handles))
            wall = time.perf_counter() - t0
            assert all(r == s for r in results)
            return wall, t_started

        wall, started = asyncio.run(go())
    else:
        wf = wfs["tp_sync"]
        t0 = time.perf_counter()
        handles = [dbos_cls.start_workflow(wf, s) for _ in range(w)]
        started = time.perf_counter() - t0
        results = [h.get_result() for h in handles]
        wall = time.perf_counter() - t0
        assert all(r == s for r in results)
    return {
        "workflows": w,
        "steps_per_workflow": s,
        "wall_s": wall,
        "all_started_s": started,
        "steps_per_s": w * s / wall,
        "workflows_per_s": w / wall,
    }


def _quantile(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(q * len(ys)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="workload", required=True)
    seq = sub.add_parser("sequential", help="1 workflow x N steps")
    seq.add_argument("--steps", type=int, default=200)
    tp = sub.add_parser("throughput", help="W workflows x S steps")
    tp.add_argument("--workflows", type=int, default=1000)
    tp.add_argument("--steps", type=int, default=10)
    for p in (seq, tp):
        p.add_argument("--repeat", type=int, default=3)
        p.add_argument(
            "--dir",
            default=None,
            help="parent dir for the per-run temp dirs (default: $TMPDIR or /tmp)",
        )
        p.add_argument(
            "--mode",
            choices=("async", "sync"),
            default="async",
            help="async workflows/steps (default) or sync ones",
        )
    args = ap.parse_args(argv)

    # Keep the real stdout for the single JSON line; send everything else
    # (DBOS console logs, prints from libraries) to stderr.
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)

    try:
        import dbos
        from dbos import DBOS
    except ImportError:
        _emit({"peer": PEER, "error": "not installed"}, real_stdout)
        return 0

    version = getattr(dbos, "__version__", None)
    if version is None:
        from importlib.metadata import version as _v

        version = _v("dbos")

    wfs = _register(DBOS)
    workflows = getattr(args, "workflows", 1)
    runs = [
        _run_once(DBOS, wfs, args.workload, args.mode, args.steps, workflows, args.dir)
        for _ in range(args.repeat)
    ]

    result: dict[str, Any] = {
        "peer": PEER,
        "version": version,
        "workload": args.workload,
        "api": f"{args.mode} workflows/steps"
        + (
            " (DBOS.start_workflow_async + handle.get_result)"
            if args.mode == "async" and args.workload == "throughput"
            else " (DBOS.start_workflow + handle.get_result)"
            if args.workload == "throughput"
            else " (direct workflow call)"
        ),
        "database": "sqlite (fresh temp dir per run, DBOS default settings)",
        "python": sys.version.split()[0],
        "db_filesystem": fs_type(args.dir or tempfile.gettempdir()),
        "pragmas": runs[0]["pragmas"] if runs else None,
        "runs": [{k: v for k, v in r.items() if k != "pragmas"} for r in runs],
    }
    if args.workload == "sequential":
        result["steps"] = args.steps
        result["median_per_step_ms"] = statistics.median(r["per_step_ms"] for r in runs)
        result["median_step_call_ms"] = statistics.median(r["median_step_ms"] for r in runs)
    else:
        result["workflows"] = args.workflows
        result["steps"] = args.steps
        result["median_steps_per_s"] = statistics.median(r["steps_per_s"] for r in runs)
        result["median_workflows_per_s"] = statistics.median(r["workflows_per_s"] for r in runs)
    sys.stdout.flush()
    _emit(result, real_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
