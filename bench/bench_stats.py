"""``Client.stats()`` benchmark: analytics over a large SQLite store (issue 18's target:
1,000,000 runs / 10,000,000 events in at most 3 s).

The store is filled straight through its tables (``executemany`` in one transaction,
after the store made its schema): going through ``create_run``/``append`` would take
longer than the measurement is worth, and only what is stored matters to the read. Each
run has ``--events`` events: ``run_started``, step events (5 step names, one attempt in
ten a ``step_retrying`` with an error, the others ``step_completed`` with their
duration), and its closing event; runs are 80% completed, 10% failed, 5% cancelled and
5% still running (no closing event), over 5 workflow names, created one second apart.

The stats rollup's triggers are set aside during the fill, and the rollup is then built
by its migration's own statements, as for an existing store (timed apart);
``--triggers`` fills through them instead, leaving every run pending: the first read
then pays the catch-up.

Timed: ``Client.stats()`` over every run, and over the newest 10% (``since``), each
``--repeats`` times (the first read is also the one that warms the page cache: the
table shows the median, and the first apart).

    python bench/bench_stats.py                      # 100,000 runs / 1,000,000 events
    python bench/bench_stats.py --runs 1000000       # the issue's size
    python bench/bench_stats.py --tiny               # smoke run
    python bench/bench_stats.py --url postgresql://...  # PostgreSQL (a schema of its own,
                                                        # filled with COPY, dropped after)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

import duro

WORKFLOWS = [f"bench.flow{i}" for i in range(5)]
STEPS = [f"bench.step{i}" for i in range(5)]
BASE = 1_700_000_000.0
_ERROR = orjson.dumps({"type": "TimeoutError", "message": "slow", "traceback": "",
                       "non_retryable": False})


def _status(i: int) -> str:
    r = i % 20
    return "failed" if r < 2 else "cancelled" if r == 2 else "running" if r == 3 \
        else "completed"


def _events(run_id: str, status: str, created: float, n: int,
            rng: random.Random) -> Iterator[tuple[Any, ...]]:
    yield (run_id, 0, "run_started", None, None, created, b'{"args":[],"kwargs":{}}', None)
    steps = n - 1 if status == "running" else n - 2
    for seq in range(1, steps + 1):
        duration = round(rng.expovariate(50), 6)
        # Not orjson.dumps: its small results keep a 4 KB buffer each (10M of them would
        # not fit in memory).
        meta = f'{{"attempt":1,"duration":{duration!r}}}'.encode()
        name = STEPS[seq % len(STEPS)]
        if rng.random() < 0.1:
            yield (run_id, seq, "step_retrying", seq, name, created + seq, _ERROR, meta)
        else:
            yield (run_id, seq, "step_completed", seq, name, created + seq, b"1", meta)
    if status != "running":
        yield (run_id, steps + 1, f"run_{status}", None, None, created + steps + 1,
               _ERROR if status == "failed" else None, None)


_CHUNK = 20_000
"""Runs generated and written at a time (10M events at once would not fit in memory)."""
_RUN_COLUMNS = ("run_id, workflow_id, workflow_name, status, created_at, updated_at, "
                "closed_at, error")


def _chunks(runs: int, per_run: int, seed: int = 7) -> Iterator[tuple[list[Any], list[Any]]]:
    """The rows of the runs and of their events, ``_CHUNK`` runs at a time."""
    rng = random.Random(seed)
    for first in range(0, runs, _CHUNK):
        run_rows, event_rows = [], []
        for i in range(first, min(runs, first + _CHUNK)):
            run_id, status, created = f"run-{i:08d}", _status(i), BASE + i
            closed = None if status == "running" else created + rng.expovariate(1 / 30)
            run_rows.append((run_id, f"wf-{i}", WORKFLOWS[i % len(WORKFLOWS)], status,
                             created, closed or created, closed,
                             _ERROR if status == "failed" else None))
            event_rows.extend(_events(run_id, status, created, per_run, rng))
        yield run_rows, event_rows


def _rollup_backfill(dialect: str = "sqlite") -> list[str]:
    """The statements of the stats rollup's migration that fill it from the tables."""
    from importlib import import_module

    migrations = import_module(f"duro.store.{dialect}._sql").migrations
    (sql,) = [sql for _, name, sql in migrations() if name.endswith("stats_rollup")]
    return [s for s in sql.split(";\n") if s.lstrip().startswith("INSERT INTO stats_")]


def fill(path: Path, runs: int, per_run: int, *, triggers: bool = False) -> float:
    """``runs`` runs of ``per_run`` events each, in one transaction. Without
    ``triggers``, the stats rollup's triggers are set aside while the rows go in and the
    rollup is then built the way its migration builds it for an existing store (that
    build's seconds are returned; 0.0 with triggers)."""
    with sqlite3.connect(path) as conn:
        kept = [] if triggers else conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND name LIKE 'stats_%'").fetchall()
        for name, _ in kept:
            conn.execute(f"DROP TRIGGER {name}")
        for run_rows, event_rows in _chunks(runs, per_run):
            conn.executemany(f"INSERT INTO runs ({_RUN_COLUMNS}) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", event_rows)
        t0 = time.perf_counter()
        if kept:
            for statement in _rollup_backfill():
                conn.execute(statement)
            for _, sql in kept:
                conn.execute(sql)
        built = time.perf_counter() - t0 if kept else 0.0
        conn.execute("ANALYZE")
    return built


def fill_postgres(url: str, schema: str, runs: int, per_run: int, *,
                  triggers: bool = False) -> tuple[int, float]:
    """As :func:`fill`, with COPY; returns the number of events and the seconds of the
    rollup's build."""
    import psycopg

    events = 0
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as conn:
        if not triggers:
            conn.execute("ALTER TABLE runs DISABLE TRIGGER USER")
            conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        for run_rows, event_rows in _chunks(runs, per_run):
            with conn.cursor() as cur:
                with cur.copy(f"COPY runs ({_RUN_COLUMNS}) FROM STDIN") as copy:
                    for row in run_rows:
                        copy.write_row(row)
                with cur.copy("COPY events FROM STDIN") as copy:
                    for row in event_rows:
                        copy.write_row(row)
            events += len(event_rows)
        conn.execute("ANALYZE runs")
        conn.execute("ANALYZE events")
        t0 = time.perf_counter()
        if not triggers:
            for statement in _rollup_backfill("postgres"):
                conn.execute(statement)
            conn.execute("ALTER TABLE runs ENABLE TRIGGER USER")
            conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
        built = time.perf_counter() - t0 if not triggers else 0.0
    return events, built


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _make_schema(url: str) -> None:
    async with duro.Client(url):
        pass


async def _time(url: str, since: float | None, repeats: int) -> tuple[list[float], Any]:
    times, stats = [], None
    async with duro.Client(url) as client:
        for _ in range(repeats):
            t0 = time.perf_counter()
            stats = await client.stats(since=since)
            times.append(time.perf_counter() - t0)
    return times, stats


def _measure(url: str, args: argparse.Namespace, out: dict[str, Any], events: int,
             fill_s: float, store: str) -> None:
    print(f"{store}: filled {args.runs:,} runs / {events:,} events in {fill_s:.1f} s")
    out.update(events=events, fill_s=fill_s, store=store)
    newest = BASE + args.runs * 0.9
    for label, since in (("all runs", None), ("newest 10%", newest)):
        times, stats = asyncio.run(_time(url, since, args.repeats))
        started = sum(w.started for w in stats.workflows)
        print(f"stats, {label}: first {times[0]:.3f} s, median "
              f"{statistics.median(times):.3f} s over {len(times)} "
              f"({started:,} runs, {len(stats.steps)} step rows, "
              f"{len(stats.errors)} error rows)")
        out["reads"][label] = {"first_s": times[0], "median_s": statistics.median(times),
                               "times_s": times, "runs_counted": started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10, help="events per run (>= 3)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="1,000 runs, 1 repeat")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--url", help="a PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--triggers", action="store_true",
                        help="fill through the stats rollup's triggers (slower) "
                             "instead of building the rollup after the fill")
    args = parser.parse_args(argv)
    if args.tiny:
        args.runs, args.repeats = 1000, 1
    out: dict[str, Any] = {"runs": args.runs, "python": sys.version.split()[0],
                           "sqlite": sqlite3.sqlite_version, "reads": {}}
    if args.url:
        schema = f"bench_stats_{os.getpid()}"
        url = f"{args.url}{'&' if '?' in args.url else '?'}schema={schema}"
        asyncio.run(_make_schema(url))
        try:
            t0 = time.perf_counter()
            events, out["rollup_build_s"] = fill_postgres(
                args.url, schema, args.runs, args.events, triggers=args.triggers)
            _measure(url, args, out, events, time.perf_counter() - t0, "PostgreSQL")
        finally:
            drop_schema(args.url, schema)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stats.db"
            url = f"sqlite:///{path}"
            asyncio.run(_make_schema(url))
            t0 = time.perf_counter()
            out["rollup_build_s"] = fill(path, args.runs, args.events,
                                         triggers=args.triggers)
            fill_s = time.perf_counter() - t0
            how = "kept by its triggers during the fill" if args.triggers else \
                f"built after the fill in {out['rollup_build_s']:.1f} s"
            print(f"stats rollup: {how}")
            with sqlite3.connect(path) as conn:
                events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            _measure(url, args, out, events, fill_s,
                     f"SQLite ({path.stat().st_size / 1e6:.0f} MB)")
    _table(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def _table(out: dict[str, Any]) -> None:
    """The figures as a Markdown table (docs/observability.md's)."""
    print("\n| store | runs / events | read | first | median | runs counted |")
    print("|---|---|---|---|---|---|")
    for label, r in out["reads"].items():
        print(f"| {out['store']} | {out['runs']:,} / {out['events']:,} | {label} | "
              f"{r['first_s']:.3f} s | {r['median_s']:.3f} s | {r['runs_counted']:,} |")
    if out.get("rollup_build_s"):
        print(f"\nrollup built after the fill in {out['rollup_build_s']:.1f} s")


if __name__ == "__main__":
    raise SystemExit(main())
