"""Streaming benchmark (issue 17, item 4): ``--chunks`` chunks of ~20 bytes from one step,
through ``duro.stream()``, to a live reader (``handle.stream()``) in the same process.

Each chunk is the ``time.perf_counter_ns()`` of its ``duro.stream()`` call (20 digits),
so the reader measures each chunk's latency: from the call to the reader receiving it
(batched by the worker, written beside the history, read back from the store after the
in-process wake-up). The step is async and yields to the event loop after each chunk
(``--yield-every``), as a step reading a model's tokens from the network does.

Reported per run: the step's throughput (chunks / the step body's time, and chunks / the
time from the first call to the reader's last chunk) and the latency p50 / p99 / max;
the table shows the medians of ``--repeats`` runs (targets: >= 20,000 chunks/s on SQLite,
p99 <= 10 ms). No thresholds are asserted.

    python bench/bench_stream.py                          # SQLite, 20,000 chunks, 3 runs
    python bench/bench_stream.py --url postgresql://...   # PostgreSQL (own schema, dropped)
    python bench/bench_stream.py --tiny --json out.json   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duro

_BODY: dict[str, float] = {}
"""The step body's duration per workflow id (set by the step: wall time, not durable)."""


@duro.step(name="bench_stream.emit")
async def emit(chunks: int, rate: float, key: str) -> int:
    """``chunks`` chunks as fast as it can (``rate`` 0), yielding to the loop after each,
    or at ``rate`` chunks a second (a burst each millisecond, as tokens come)."""
    started = time.perf_counter()
    if rate <= 0:
        for _ in range(chunks):
            duro.stream(f"{time.perf_counter_ns():020d}")
            await asyncio.sleep(0)
    else:
        sent = 0
        while sent < chunks:
            due = min(chunks, int((time.perf_counter() - started) * rate) + 1)
            while sent < due:
                duro.stream(f"{time.perf_counter_ns():020d}")
                sent += 1
            await asyncio.sleep(0.001)
    _BODY[key] = time.perf_counter() - started
    return chunks


@duro.workflow(name="bench_stream.talk")
async def talk(chunks: int, rate: float, key: str) -> int:
    return await emit(chunks, rate, key)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(url: str, chunks: int, rate: float, key: str) -> dict[str, float]:
    latencies: list[float] = []
    async with duro.Engine(url) as engine:
        handle = await engine.start(talk, chunks, rate, key, id=key)
        first = last = 0
        async for chunk in handle.stream():
            now = time.perf_counter_ns()
            sent = int(chunk.data)
            first = first or sent
            last = now
            latencies.append((now - sent) / 1e6)
        assert await handle.result(timeout=120) == chunks
    assert len(latencies) == chunks, (len(latencies), chunks)
    return {"step_chunks_per_s": chunks / _BODY[key],
            "end_to_end_chunks_per_s": chunks / ((last - first) / 1e9),
            "p50_ms": _pct(latencies, 0.50), "p99_ms": _pct(latencies, 0.99),
            "max_ms": max(latencies)}


def measure(url: str, store: str, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for i in range(args.repeats):
        runs.append(asyncio.run(one_run(url, args.chunks, rate,
                                        f"bs-{os.getpid()}-{store}-{rate:g}-{i}")))
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return {"store": store, "rate": rate, "median": median, "runs": runs}


def _table(results: list[dict[str, Any]], chunks: int) -> None:
    print(f"{chunks:,} chunks of 20 bytes, one step -> a live reader in the same process "
          f"(medians of {len(results[0]['runs'])})")
    print(f"{'store':<12} {'step paced at':>14} {'step chunks/s':>14} {'end-to-end/s':>13} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        m = r["median"]
        paced = f"{r['rate']:,.0f}/s" if r["rate"] > 0 else "unpaced"
        print(f"{r['store']:<12} {paced:>14} {m['step_chunks_per_s']:>14,.0f} "
              f"{m['end_to_end_chunks_per_s']:>13,.0f} {m['p50_ms']:>8.2f} "
              f"{m['p99_ms']:>8.2f} {m['max_ms']:>8.2f}")


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, action="append",
                        help="chunks/s the step emits at (0: as fast as it can); "
                             "repeatable (default: 20000 and 0)")
    parser.add_argument("--url", help="also on this PostgreSQL (a schema of its own)")
    parser.add_argument("--tiny", action="store_true", help="500 chunks, 1 run")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.tiny:
        args.chunks, args.repeats = 500, 1
    rates = args.rate or [20_000.0, 0.0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results += [measure(f"sqlite:///{tmp}/stream.db", "SQLite", r, args) for r in rates]
    if args.url:
        schema = f"bench_stream_{os.getpid()}"
        try:
            url = f"{args.url}{'&' if '?' in args.url else '?'}schema={schema}"
            results += [measure(url, "PostgreSQL", r, args) for r in rates]
        finally:
            _drop_schema(args.url, schema)
    _table(results, args.chunks)
    if args.json:
        args.json.write_text(json.dumps({
            "chunks": args.chunks,
            "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
            "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
