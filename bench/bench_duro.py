"""duro's latency, replay, memory, timer and failover benchmarks, on SQLite or PostgreSQL.

Each measurement runs in a fresh subprocess, on a fresh database (SQLite file in ``--dir``,
or a fresh schema on ``--url``), after a small warm-up in that process.

* ``start``: start -> first step. ``t0 = perf_counter()``, ``await engine.start(wf)``,
  and the workflow's first step appends ``perf_counter()`` when its body runs:
  ``from_call`` = step body - t0, ``from_return`` = step body - the moment ``start()``
  returned. Sequential, N starts (default 200), median and p90.
* ``replay``: a run of 9,998 no-op steps (history: 10,000 events) is built, then a fresh
  client-only engine answers ``engine.query()`` on it (load the history + replay it,
  read-only; ``load_replay_ms``), and the history already in memory is replayed alone
  (``replay_ms``, the read-only replayer the query uses) and through
  ``duro.testing.replay`` (``testing_replay_ms``, includes converting the events).
* ``sleepers``: N runs that each sleep one hour; the worker process's VmRSS once all are
  suspended, at checkpoints every N/5 runs (per-10k slope from them).
* ``timers``: N runs whose timers end at the same wall-clock instant (real clock); per run,
  lag = when its next step's body starts - its due time: p50/p99/max. The worst case.
* ``timers_spread``: the same, the N due times spread evenly over one second.
* ``failover`` (PostgreSQL): three worker processes serve chains of 0.25 s steps; the one
  holding most runs is killed with SIGKILL; takeover = the first step start of each
  orphaned run in another worker - the kill. Twice: workers that pretend to be on other
  hosts (reported as ``lease_expiry``, its historical name: the dead worker's database
  session ends with its process, and the others, probing every 0.5 s, expire its lease
  at once; the lease, default 5 s, only decides when a host vanishes without closing its
  connections) and workers on this host (the same, plus the dead-PID check).

    python bench/bench_duro.py --store sqlite --dir /tmp
    python bench/bench_duro.py --store postgres --url postgresql://... --failover
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import signal
import socket
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
_STAMPS: list[float] = []


def _q(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, max(0, math.ceil(q * len(ys)) - 1))]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _define() -> dict[str, Any]:
    """The benchmark's workflows (children only)."""
    import duro

    stamps, pc = _STAMPS, time.perf_counter

    @duro.step(name="ba.stamp")
    async def stamp() -> None:
        stamps.append(pc())

    @duro.step(name="ba.lag")
    async def lag(due: float) -> None:
        stamps.append(time.time() - due)

    @duro.step(name="ba.noop")
    async def noop(i: int) -> int:
        return i

    @duro.workflow(name="ba_first")
    async def ba_first() -> int:
        await stamp()
        return 1

    @duro.workflow(name="ba_long")
    async def ba_long(n: int, batch: int) -> int:
        done = [0]
        duro.on_query("done", lambda: done[0])
        for lo in range(0, n, batch):
            await asyncio.gather(*(noop(i) for i in range(lo, min(n, lo + batch))))
            done[0] = min(n, lo + batch)
        return done[0]

    @duro.workflow(name="ba_sleeper")
    async def ba_sleeper(seconds: float) -> None:
        await duro.sleep(seconds)

    @duro.workflow(name="ba_timer")
    async def ba_timer(due: float) -> None:
        now = duro.now()
        ts = now.timestamp() if hasattr(now, "timestamp") else float(now)
        await duro.sleep(max(0.0, due - ts))
        await lag(due)

    return {"first": ba_first, "long": ba_long, "sleeper": ba_sleeper, "timer": ba_timer}


# -- stores ------------------------------------------------------------------------------


class Target:
    """A fresh database: a SQLite file in a temporary directory, or a fresh PG schema."""

    def __init__(self, store: str, base: str) -> None:
        self.store = store
        if store == "sqlite":
            self.dir = tempfile.mkdtemp(prefix="duro-bench-", dir=base)
            self.url = f"sqlite:///{os.path.join(self.dir, 'bench.db')}"
        else:
            self.schema = f"bench_{uuid.uuid4().hex[:10]}"
            self.url = f"{base}{'&' if '?' in base else '?'}schema={self.schema}"
            self.base = base

    def count(self, status: str) -> int:
        if self.store == "sqlite":
            import sqlite3

            con = sqlite3.connect(self.url[len("sqlite:///"):], timeout=30)
            try:
                return int(con.execute("SELECT count(*) FROM runs WHERE status = ?",
                                       (status,)).fetchone()[0])
            finally:
                con.close()
        import psycopg

        with psycopg.connect(self.base.split("?")[0]) as conn:
            row = conn.execute(f'SELECT count(*) FROM "{self.schema}".runs WHERE status = %s',
                               (status,)).fetchone()
            return int(row[0]) if row else 0

    def drop(self) -> None:
        if self.store == "sqlite":
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            import psycopg

            with psycopg.connect(self.base.split("?")[0], autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


async def _warm(store: str, base: str) -> None:
    import duro

    wfs = _define()
    t = Target(store, base)
    try:
        async with duro.Engine(t.url) as engine:
            hs = await asyncio.gather(*(engine.start(wfs["first"]) for _ in range(3)))
            await asyncio.gather(*(h.result(timeout=60) for h in hs))
    finally:
        t.drop()
    _STAMPS.clear()


# -- children ------------------------------------------------------------------------------


async def m_start(store: str, base: str, n: int) -> dict[str, Any]:
    import duro

    await _warm(store, base)
    wf = _define()["first"]
    t = Target(store, base)
    from_call, from_return = [], []
    try:
        async with duro.Engine(t.url) as engine:
            for _ in range(n):
                _STAMPS.clear()
                t0 = time.perf_counter()
                h = await engine.start(wf)
                t1 = time.perf_counter()
                await h.result(timeout=60)
                from_call.append((_STAMPS[0] - t0) * 1e3)
                from_return.append((_STAMPS[0] - t1) * 1e3)
    finally:
        t.drop()
    return {"starts": n, "from_call_ms_median": statistics.median(from_call),
            "from_call_ms_p90": _q(from_call, 0.9),
            "from_return_ms_median": statistics.median(from_return),
            "from_return_ms_p90": _q(from_return, 0.9)}


async def m_replay(store: str, base: str, steps: int, repeat: int) -> dict[str, Any]:
    import duro
    from duro.testing import replay
    from duro.workflow._replayer import replayed

    await _warm(store, base)
    wf = _define()["long"]
    t = Target(store, base)
    try:
        async with duro.Engine(t.url) as engine:
            t0 = time.perf_counter()
            h = await engine.start(wf, steps, 100, id="long")
            assert await h.result(timeout=900) == steps
            build_s = time.perf_counter() - t0
            events = await h.history()
            run_id = (await h.describe()).run_id
        rows: dict[str, list[float]] = {"load_replay_ms": [], "load_ms": [], "replay_ms": [],
                                        "testing_replay_ms": []}
        for _ in range(repeat):
            async with duro.Engine(t.url, worker=False) as client:  # nothing cached
                gc.collect()
                t0 = time.perf_counter()
                answer = await client.query("long", "done")
                rows["load_replay_ms"].append((time.perf_counter() - t0) * 1e3)
                assert answer == steps, answer
                t0 = time.perf_counter()
                history = await client.store.load_history(run_id)
                rows["load_ms"].append((time.perf_counter() - t0) * 1e3)
            gc.collect()
            t0 = time.perf_counter()
            with replayed(wf, history, run_id=run_id, workflow_id="long") as inst:
                rows["replay_ms"].append((time.perf_counter() - t0) * 1e3)
                assert (inst.park_error is None and inst.main is not None
                        and inst.main.done())
            gc.collect()
            t0 = time.perf_counter()
            res = replay(wf, events, run_id=run_id, workflow_id="long")
            rows["testing_replay_ms"].append((time.perf_counter() - t0) * 1e3)
            assert res.status == "completed", res
    finally:
        t.drop()
    out: dict[str, Any] = {"steps": steps, "events": len(events), "build_s": build_s,
                           "repeat": repeat}
    for key, xs in rows.items():
        out[key] = statistics.median(xs)
        out[f"{key}_runs"] = xs
    return out


async def _wait_count(t: Target, status: str, n: int, timeout: float) -> float:
    t0 = time.monotonic()
    while True:
        c = await asyncio.to_thread(t.count, status)
        if c >= n:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"only {c}/{n} runs {status} after {timeout:.0f}s")
        await asyncio.sleep(0.5)


def sleeper_fit(checkpoints: list[tuple[int, float]], to: int = 1_000_000
                ) -> tuple[float | None, float | None]:
    """RSS MB per 10k runs, and RSS extrapolated linearly to ``to`` runs.

    The fit leaves out the point with no runs: the first checkpoint also pays for the
    worker's cache of up to ``max_active`` instances and the allocator's first arenas,
    a fixed cost that would inflate the slope.
    """
    pts = [(x, y) for x, y in checkpoints if x > 0]
    if len(pts) < 2:
        return None, None
    fit = statistics.linear_regression([x for x, _ in pts], [y for _, y in pts])
    last_x, last_y = pts[-1]
    return fit.slope * 10_000, last_y + fit.slope * (to - last_x)


async def m_sleepers(store: str, base: str, n: int, chunk: int = 1000) -> dict[str, Any]:
    import duro

    await _warm(store, base)
    wf = _define()["sleeper"]
    t = Target(store, base)
    gc.collect()
    checkpoints = [(0, _rss_mb())]
    marks = sorted({max(1, n * k // 5) for k in range(1, 6)})
    t0 = time.perf_counter()
    try:
        async with duro.Engine(t.url) as engine:
            checkpoints = [(0, _rss_mb())]
            started = 0
            for mark in marks:
                while started < mark:
                    k = min(chunk, mark - started)
                    await asyncio.gather(*(engine.start(wf, 3600.0) for _ in range(k)))
                    started += k
                await _wait_count(t, "suspended", started, timeout=1800)
                gc.collect()
                checkpoints.append((started, _rss_mb()))
                print(f"sleepers: {started} suspended, RSS {checkpoints[-1][1]:.0f} MB "
                      f"({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
            wall = time.perf_counter() - t0
            final = _rss_mb()
    finally:
        t.drop()
    base_rss = checkpoints[0][1]
    slope, extrapolated = sleeper_fit(checkpoints)
    return {"runs": n, "rss_mb": final, "rss_engine_open_mb": base_rss,
            "checkpoints": checkpoints, "rss_mb_per_10k": slope,
            "extrapolated_1m_mb": extrapolated,
            "start_and_suspend_s": wall}


async def m_timers(store: str, base: str, n: int, lead: float | None, spread: float = 0.0,
                   chunk: int = 500) -> dict[str, Any]:
    import duro

    await _warm(store, base)
    wf = _define()["timer"]
    t = Target(store, base)
    # Long enough that every run is started and suspended before the due second.
    lead = lead if lead is not None else max(3.0, n / 400)
    due = float(math.ceil(time.time() + lead))
    try:
        async with duro.Engine(t.url) as engine:
            started = 0
            while started < n:
                k = min(chunk, n - started)
                await asyncio.gather(*(engine.start(wf, due + spread * (started + i) / n)
                                       for i in range(k)))
                started += k
            all_started = time.time()
            suspended = await asyncio.to_thread(t.count, "suspended")
            deadline = time.monotonic() + max(0.0, due - time.time()) + 300
            while len(_STAMPS) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            stamps = list(_STAMPS)
    finally:
        t.drop()
    lags = [s * 1e3 for s in stamps]
    return {"timers": n, "spread_s": spread, "woken": len(lags),
            "all_started_before_due_s": due - all_started,
            "suspended_before_due": suspended,
            "lag_ms_p50": _q(lags, 0.5) if lags else None,
            "lag_ms_p99": _q(lags, 0.99) if lags else None,
            "lag_ms_max": max(lags) if lags else None,
            "lag_ms_min": min(lags) if lags else None}


# -- failover (PostgreSQL) -----------------------------------------------------------------


def _failover_worker(url: str, name: str, host: str | None, log: str) -> None:
    if host:
        socket.gethostname = lambda: host  # type: ignore[assignment]
    import duro

    f = open(log, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    @duro.step(name="fo.work")
    async def work(key: str, i: int, delay: float) -> None:
        f.write(f"{key} {i} {name} {time.time():.6f}\n")
        await asyncio.sleep(delay)

    @duro.workflow(name="fo_chain")
    async def fo_chain(key: str, steps: int, delay: float) -> None:
        for i in range(steps):
            await work(key, i, delay)

    async def serve() -> None:
        async with duro.Engine(url, workflows=[fo_chain], max_active=110) as engine:
            assert engine.worker is not None
            print(json.dumps({"ready": name, "worker_id": engine.worker.worker_id}),
                  flush=True)
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()

    asyncio.run(serve())


async def _failover_once(base: str, cross_host: bool, runs: int, tmp: Path) -> dict[str, Any]:
    import psycopg

    import duro

    t = Target("postgres", base)
    logs = [tmp / f"w{i}.log" for i in range(3)]
    procs = []
    try:
        for i, log in enumerate(logs):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child-failover-worker",
                   t.url, f"w{i}", str(log)]
            if cross_host:
                cmd += ["--host", f"bench-host-{i}"]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT))
        ids = {}
        for i, p in enumerate(procs):
            assert p.stdout is not None
            msg = json.loads(p.stdout.readline())
            ids[msg["worker_id"]] = i

        @duro.workflow(name="fo_chain")
        async def fo_chain(key: str, steps: int, delay: float) -> None: ...

        async with duro.Engine(t.url, worker=False) as client:
            keys = [f"r{k}" for k in range(runs)]
            await asyncio.gather(*(client.start(fo_chain, key, 6, 0.25, id=key)
                                   for key in keys))
            await asyncio.sleep(1.0)  # let the workers claim and get going
            async with await psycopg.AsyncConnection.connect(base.split("?")[0]) as conn:
                cur = await conn.execute(f'SELECT owner, workflow_id FROM "{t.schema}".runs '
                                         "WHERE status = 'running'")
                owned = await cur.fetchall()
            by_owner: dict[str, set[str]] = {}
            for owner, wid in owned:
                by_owner.setdefault(owner, set()).add(wid)
            victim_id = max(by_owner, key=lambda o: len(by_owner[o]))
            victim = ids[victim_id]
            orphans = by_owner[victim_id]
            killed_at = time.time()
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(timeout=10)
            await asyncio.gather(*(client.get_handle(k).result(timeout=120) for k in keys))
        takeover = []
        for wid in orphans:
            after = []
            for i, log in enumerate(logs):
                if i == victim or not log.exists():
                    continue
                for line in log.read_text().splitlines():
                    key, _, _, ts = line.split()
                    if key == wid and float(ts) > killed_at:
                        after.append(float(ts))
            if after:
                takeover.append(min(after) - killed_at)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        t.drop()
    return {"cross_host": cross_host, "orphans": len(orphans), "taken_over": len(takeover),
            "takeover_s_p50": statistics.median(takeover) if takeover else None,
            "takeover_s_max": max(takeover) if takeover else None}


async def m_failover(base: str, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        out = {}
        for cross in (True, False):
            sub = Path(d) / ("cross" if cross else "same")
            sub.mkdir()
            out["lease_expiry" if cross else "same_host"] = await _failover_once(
                base, cross, runs, sub)
    out["lease_s"] = 5.0
    return out


# -- parent --------------------------------------------------------------------------------


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr[-2000:])
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: "
                         f"{' | '.join(proc.stderr.strip().splitlines()[-3:])}"}
    obj: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return obj


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0].get("error") if runs else "no runs", "runs": runs}
    out: dict[str, Any] = {"runs": runs}
    for key, value in ok[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            xs = [r[key] for r in ok if isinstance(r.get(key), (int, float))]
            out[key] = statistics.median(xs)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--url", help="PostgreSQL server URL (--store postgres)")
    ap.add_argument("--dir", default=None, help="parent of the SQLite files")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--starts", type=int, default=200)
    ap.add_argument("--replay-steps", type=int, default=9_998)
    ap.add_argument("--sleepers", type=int, default=100_000)
    ap.add_argument("--timers", type=int, default=10_000)
    ap.add_argument("--timer-lead", type=float, default=None)
    ap.add_argument("--failover", action="store_true", help="also failover (PostgreSQL)")
    ap.add_argument("--failover-runs", type=int, default=150)
    ap.add_argument("--only", action="append",
                    choices=("start", "replay", "sleepers", "timers", "timers_spread",
                             "failover"))
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-failover-worker", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--host", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child_failover_worker:
        url, name, log = args.child_failover_worker
        _failover_worker(url, name, args.host, log)
        return 0
    base = args.url if args.store == "postgres" else (args.dir or tempfile.gettempdir())
    if args.store == "postgres" and not base:
        ap.error("--store postgres needs --url")
    if args.child:
        coro: Any
        if args.child == "start":
            coro = m_start(args.store, base, args.starts)
        elif args.child == "replay":
            coro = m_replay(args.store, base, args.replay_steps, args.repeat)
        elif args.child == "sleepers":
            coro = m_sleepers(args.store, base, args.sleepers)
        elif args.child in ("timers", "timers_spread"):
            coro = m_timers(args.store, base, args.timers, args.timer_lead,
                            spread=1.0 if args.child == "timers_spread" else 0.0)
        else:
            coro = m_failover(base, args.failover_runs)
        print(json.dumps(asyncio.run(coro)), flush=True)
        return 0

    if args.tiny:
        args.repeat, args.starts, args.replay_steps = 1, 5, 98
        args.sleepers, args.timers = min(args.sleepers, 200), min(args.timers, 100)
        args.timer_lead, args.failover_runs = args.timer_lead or 2.0, 12
    common = ["--store", args.store, "--starts", str(args.starts),
              "--replay-steps", str(args.replay_steps), "--sleepers", str(args.sleepers),
              "--timers", str(args.timers), "--failover-runs", str(args.failover_runs),
              "--repeat", str(args.repeat)]
    common += ["--url", base] if args.store == "postgres" else ["--dir", base]
    if args.timer_lead is not None:
        common += ["--timer-lead", str(args.timer_lead)]
    wanted = args.only or ["start", "replay", "sleepers", "timers", "timers_spread"] + \
        (["failover"] if args.failover and args.store == "postgres" else [])
    out: dict[str, Any] = {"store": args.store, "loadavg_at_start": list(os.getloadavg())}
    for name in wanted:
        print(f"[bench_duro {args.store}] {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        if name == "start":
            out[name] = _median_of([_child([*common, "--child", name], args.timeout)
                                    for _ in range(args.repeat)])
        elif name in ("timers", "timers_spread"):
            # Each repeat is a fresh process and database; medians of the percentiles.
            out[name] = _median_of([_child([*common, "--child", name], args.timeout)
                                    for _ in range(args.repeat)])
        else:  # replay repeats inside its child; sleepers and failover run once
            out[name] = _child([*common, "--child", name], args.timeout)
        out[name]["took_s"] = time.monotonic() - t0
        print(f"[bench_duro {args.store}] {name}: "
              f"{json.dumps({k: v for k, v in out[name].items() if k != 'runs'})[:400]}",
              file=sys.stderr, flush=True)
    out["loadavg_at_end"] = list(os.getloadavg())
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
