"""Peer benchmark: DBOS (pip package ``dbos``) with its system database on PostgreSQL.

The same workloads as ``peer_dbos.py`` (which uses SQLite), on the server duro's
``bench_postgres.py`` measures: every repeat gets a fresh database (DBOS creates it),
dropped afterwards. DBOS's default settings otherwise. One JSON line on stdout.

    python bench/peer_dbos_pg.py postgresql://postgres@127.0.0.1:5432/postgres sequential
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from peer_dbos import _emit, _register, _sequential, _throughput  # bench/ is on sys.path

PEER = "dbos"


def _database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}", query=""))


def _run_once(dbos_cls: Any, wfs: dict[str, Any], base: str, workload: str, steps: int,
              workflows: int) -> dict[str, Any]:
    import psycopg

    name = f"dbos_bench_{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {"name": "peer-dbos-bench",
                              "system_database_url": _database_url(base, name),
                              "log_level": "WARNING"}
    try:
        dbos_cls(config=config)
        dbos_cls.launch()
        try:
            if workload == "sequential":
                return _sequential(wfs, "async", steps)
            return _throughput(dbos_cls, wfs, "async", workflows, steps)
        finally:
            dbos_cls.destroy(destroy_registry=False)
    finally:
        with psycopg.connect(base.split("?")[0], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("workload", choices=("sequential", "throughput"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workflows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        import dbos
        from dbos import DBOS
    except ImportError:
        _emit({"peer": PEER, "error": "not installed"}, real_stdout)
        return 0
    wfs = _register(DBOS)
    runs = [_run_once(DBOS, wfs, args.url, args.workload, args.steps, args.workflows)
            for _ in range(args.repeat)]
    result: dict[str, Any] = {"peer": PEER, "version": getattr(dbos, "__version__", None),
                              "workload": args.workload, "database": "postgresql",
                              "runs": runs}
    if args.workload == "sequential":
        result["median_per_step_ms"] = statistics.median(r["per_step_ms"] for r in runs)
        result["median_step_call_ms"] = statistics.median(r["median_step_ms"] for r in runs)
    else:
        result["median_steps_per_s"] = statistics.median(r["steps_per_s"] for r in runs)
    _emit(result, real_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
