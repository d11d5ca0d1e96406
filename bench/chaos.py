"""Chaos: workers SIGKILLed at random while runs take steps, receive signals (with and
without continue-as-new) and updates, with a writer fault injected at random into the
store's batches; then every run must have completed with the right result.

Checked at the end, from the database itself:

* every run completed (none failed, parked or stuck) with the result its inputs imply;
* every signal was applied exactly once, in the order sent (one run per chain takes them
  one by one, another with a handler and continue-as-new every three);
* every acknowledged update was applied exactly once (the workflow's list of applied
  values has each sent value once; acknowledgements 1..n, each once), across
  continue-as-new every four;
* no history has a gap (sequence numbers 0..len-1, len equal to the run's record);
* no step completion is recorded twice; executions (logged by the steps themselves,
  before they return) are at least the completions, the difference being what kills
  and faults cost;
* nothing is left in an inbox.

The default test run uses a short configuration (tests/acceptance/test_chaos.py); for a
soak, raise the numbers::

    python bench/chaos.py --store sqlite --runs 200 --seconds 120
    python bench/chaos.py --store postgres --runs 400 --seconds 300 --workers 4
    python bench/chaos.py --store postgres --db 'postgresql://...' --json chaos.json

Prints a table, writes JSON with ``--json``, exits 1 if anything was violated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duro  # noqa: E402

# -- the workflows (registered in the worker processes; the driver starts them by name) --

_LOG_FD: int | None = None  # the step-executions log of a worker process


def _executed() -> None:
    """Log this step attempt (before it returns: the side effect at-least-once covers)."""
    info = duro.step_info()
    if _LOG_FD is not None:
        os.write(_LOG_FD, f"{info.run_id} {info.seq} {info.attempt}\n".encode())


@duro.step(name="chaos.square", retry=duro.RetryPolicy(initial_interval=0.01))
async def square(i: int) -> int:
    await asyncio.sleep(random.uniform(0.0, 0.01))
    _executed()
    return i * i


@duro.step(name="chaos.note")
def note(value: int) -> int:
    _executed()
    return value


@duro.workflow(name="chaos.steps")
async def steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await square(i)
        if i % 2:
            await asyncio.sleep(0.3)  # a durable timer (the run is held or suspended)
    parts = await asyncio.gather(*(square(100 + i) for i in range(3)))
    return total + sum(parts)


def steps_result(n: int) -> int:
    return sum(i * i for i in range(n)) + sum((100 + i) ** 2 for i in range(3))


@duro.workflow(name="chaos.signals")
async def signals(n: int) -> list[int]:
    got: list[int] = []
    while len(got) < n:
        value = await duro.wait_for_signal("v", type=int)
        got.append(await note(value))
    return got


@duro.workflow(name="chaos.signals_can")
async def signals_can(n: int, got: list[int]) -> list[int]:
    batch: list[int] = []
    duro.on_signal("v", lambda v: batch.append(v))
    await duro.wait_condition(lambda: len(batch) >= 3 or len(got) + len(batch) >= n)
    await note(len(got) + len(batch))
    # Taken now, not before the step: the handler keeps receiving while it runs.
    got = [*got, *batch]
    if len(got) >= n:
        return got
    duro.continue_as_new(n, got)
    raise AssertionError("unreachable")


@duro.workflow(name="chaos.updates")
async def updates(n: int, got: list[int]) -> list[int]:
    applied = list(got)

    def add(value: int) -> int:
        applied.append(value)
        return len(applied)

    duro.on_update("add", add)
    target = min(n, len(got) + 4)
    await duro.wait_condition(lambda: len(applied) >= target)
    await note(len(applied))
    if len(applied) >= n:
        return applied
    duro.continue_as_new(n, applied)
    raise AssertionError("unreachable")


# -- a worker process ---------------------------------------------------------------------


def worker_main(url: str, log: str) -> None:
    """Serve until killed (or for ten minutes)."""
    global _LOG_FD
    _LOG_FD = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def serve() -> None:
        async with duro.Engine(url, lease=1.0, poll_interval=0.05):
            await asyncio.sleep(600)

    asyncio.run(serve())


# -- the driver ---------------------------------------------------------------------------


@dataclass
class Config:
    store: str = "sqlite"
    db: str | None = None
    runs: int = 24  # split over the four kinds
    seconds: float = 12.0  # of kills
    workers: int = 2
    kill_every: tuple[float, float] = (0.2, 0.8)
    fault: float = 0.03  # probability that an event insert fails
    signals: int = 12  # per signal run
    updates: int = 10  # per update run
    steps: int = 8  # per step run
    deadline: float = 90.0  # for everything to complete after the kills stop
    seed: int = field(default_factory=lambda: random.randrange(2**32))


@dataclass
class Report:
    store: str
    seed: int
    runs: int = 0
    completed: int = 0
    kills: int = 0
    worker_starts: int = 0
    signals_sent: int = 0
    updates_sent: int = 0
    update_retries: int = 0
    faults_hit: int | None = None
    step_executions: int = 0
    step_completions: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


def _ids(cfg: Config) -> dict[str, list[str]]:
    per = max(1, cfg.runs // 4)
    return {kind: [f"{kind}-{i}" for i in range(per)]
            for kind in ("steps", "signals", "signals_can", "updates")}


class Workers:
    """The worker processes, killed and replaced at random."""

    def __init__(self, url: str, log: Path, count: int, rng: random.Random) -> None:
        self.url, self.log, self.count, self.rng = url, log, count, rng
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stderr: list[Path] = []
        self.starts = 0
        self.kills = 0

    def spawn(self) -> None:
        err = self.log.with_name(f"worker-{self.starts}.err")
        self.stderr.append(err)
        with err.open("wb") as out:
            self.procs.append(subprocess.Popen(
                [sys.executable, __file__, "--worker", self.url, str(self.log)],
                stdout=subprocess.DEVNULL, stderr=out, cwd=ROOT))
        self.starts += 1

    def fill(self) -> None:
        self.procs = [p for p in self.procs if p.poll() is None]
        while len(self.procs) < self.count:
            self.spawn()

    def kill_one(self) -> None:
        alive = [p for p in self.procs if p.poll() is None]
        if alive:
            victim = self.rng.choice(alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            self.kills += 1
        self.fill()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)

    def write_errors(self) -> int:
        """How many writes the workers reported failed (the injected faults among them)."""
        text = "".join(p.read_text(errors="replace") for p in self.stderr if p.exists())
        return len(re.findall(r"could not write run .*(malformed JSON|injected fault)", text))


async def _send_signals(client: duro.Engine, workflow_id: str, values: list[int],
                        rng: random.Random, spread: float) -> None:
    """One after another (their order is checked), spread over ``spread`` seconds, some
    in quick bursts."""
    for value in values:
        await client.signal(workflow_id, "v", value)
        if rng.random() < 0.7:
            await asyncio.sleep(rng.uniform(0.0, 2 * spread / len(values)))


async def _send_updates(client: duro.Engine, workflow_id: str, values: list[int],
                        rng: random.Random, report: Report, spread: float) -> list[int]:
    """Each update sent until acknowledged (retried with the same id: idempotent)."""
    handle = client.get_handle(workflow_id)
    acks: list[int] = []

    async def one(value: int) -> None:
        while True:
            try:
                acks.append(await handle.update("add", value, id=f"{workflow_id}:{value}",
                                                timeout=5, type=int))
                return
            except TimeoutError:
                report.update_retries += 1

    for chunk in range(0, len(values), 3):
        await asyncio.gather(*(one(v) for v in values[chunk:chunk + 3]))
        await asyncio.sleep(rng.uniform(0.0, 6 * spread / len(values)))
    return acks


async def drive(cfg: Config, url: str, workdir: Path) -> Report:
    from tests.faults import fault_hits, install_fault

    rng = random.Random(cfg.seed)
    report = Report(store=cfg.store, seed=cfg.seed)
    log = workdir / "executions.log"
    log.touch()
    ids = _ids(cfg)
    started = time.monotonic()
    async with duro.Engine(url, worker=False) as client:
        # The fault strikes the workers' writes (a start's first event is the client's).
        install_fault(url, "NEW.kind <> 'run_started'", probability=cfg.fault)
        for wid in ids["steps"]:
            await client.start("chaos.steps", cfg.steps, id=wid)
        for wid in ids["signals"]:
            await client.start("chaos.signals", cfg.signals, id=wid)
        for wid in ids["signals_can"]:
            await client.start("chaos.signals_can", cfg.signals, [], id=wid)
        for wid in ids["updates"]:
            await client.start("chaos.updates", cfg.updates, [], id=wid)
        report.runs = sum(len(v) for v in ids.values())
        workers = Workers(url, log, cfg.workers, rng)
        workers.fill()
        values = list(range(1, cfg.signals + 1))
        # Spread over most of the kills, so that the workers die while messages arrive.
        spread = cfg.seconds * 0.7
        sends = [asyncio.ensure_future(_send_signals(client, wid, values, rng, spread))
                 for wid in ids["signals"] + ids["signals_can"]]
        update_values = list(range(1, cfg.updates + 1))
        update_sends = {wid: asyncio.ensure_future(
            _send_updates(client, wid, update_values, rng, report, spread))
            for wid in ids["updates"]}
        report.signals_sent = len(sends) * len(values)
        report.updates_sent = len(update_sends) * len(update_values)
        try:
            chaos_end = time.monotonic() + cfg.seconds
            while time.monotonic() < chaos_end:
                await asyncio.sleep(rng.uniform(*cfg.kill_every))
                workers.kill_one()
            done = time.monotonic() + cfg.deadline
            pending = [*sends, *update_sends.values()]
            while time.monotonic() < done:
                workers.fill()  # a worker may have exited on its own: never leave none
                runs = await client.list(limit=10_000)
                if (all(p.done() for p in pending) and runs
                        and all(r.status.is_terminal for r in runs)):
                    break
                await asyncio.sleep(0.2)
            for task in pending:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            workers.stop()
        report.kills = workers.kills
        report.worker_starts = workers.starts
        report.seconds = round(time.monotonic() - started, 1)
        hits = fault_hits(url)
        report.faults_hit = hits if hits is not None else workers.write_errors()
        await _check(client, cfg, ids, update_sends, report)
    _check_database(url, log, report)
    return report


async def _check(client: duro.Engine, cfg: Config, ids: dict[str, list[str]],
                 update_sends: dict[str, asyncio.Future[list[int]]], report: Report) -> None:
    bad = report.violations
    expected: dict[str, Any] = {}
    for wid in ids["steps"]:
        expected[wid] = steps_result(cfg.steps)
    for wid in ids["signals"] + ids["signals_can"]:
        expected[wid] = list(range(1, cfg.signals + 1))
    for wid in ids["updates"]:
        expected[wid] = None  # checked below: each value once, any order
    for wid, want in expected.items():
        handle = client.get_handle(wid)
        info = await handle.describe()
        if info.status.value != "completed":
            bad.append(f"{wid}: {info.status.value} ({info.error})")
            continue
        report.completed += 1
        got = await handle.result(timeout=5)
        if want is not None and got != want:
            bad.append(f"{wid}: result {got!r}, expected {want!r}")
        if wid in update_sends:
            if Counter(got) != Counter(range(1, cfg.updates + 1)):
                bad.append(f"{wid}: updates applied {sorted(got)}")
            task = update_sends[wid]
            acks = task.result() if task.done() and not task.exception() else []
            if sorted(acks) != list(range(1, cfg.updates + 1)):
                bad.append(f"{wid}: acknowledgements {sorted(acks)}")


@contextlib.contextmanager
def _db(url: str) -> Iterator[tuple[Any, str]]:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url[len("sqlite:///"):].split("?")[0])
        try:
            yield conn, "?"
        finally:
            conn.close()
        return
    from tests.faults import _pg

    with _pg(url) as conn:
        yield conn, "%s"


def _check_database(url: str, log: Path, report: Report) -> None:
    bad = report.violations
    with _db(url) as (conn, _):
        lengths = dict(conn.execute("SELECT run_id, history_len FROM runs").fetchall())
        seqs: dict[str, list[int]] = {}
        for run_id, seq in conn.execute("SELECT run_id, seq FROM events ORDER BY run_id, seq"):
            seqs.setdefault(run_id, []).append(seq)
        for run_id, length in lengths.items():
            got = seqs.get(run_id, [])
            if got != list(range(length)):
                bad.append(f"history of {run_id} is not whole: {got[:20]}... of {length}")
        twice = conn.execute(
            "SELECT run_id, op, count(*) FROM events WHERE kind IN ('step_completed', "
            "'step_failed') GROUP BY run_id, op HAVING count(*) > 1").fetchall()
        bad.extend(f"completion of {r[0]} op {r[1]} recorded {r[2]} times" for r in twice)
        completions = conn.execute(
            "SELECT run_id, op FROM events WHERE kind = 'step_completed'").fetchall()
        left = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
        if left:
            bad.append(f"{left} messages left in inboxes")
    executions = Counter(tuple(line.split()[:2]) for line in log.read_text().splitlines())
    report.step_executions = sum(executions.values())
    report.step_completions = len(completions)
    missing = [c for c in completions if (c[0], str(c[1])) not in executions]
    if missing:
        bad.append(f"{len(missing)} completions with no execution logged, e.g. {missing[:3]}")


def _print(report: Report) -> None:
    rows = [(k, v) for k, v in asdict(report).items() if k != "violations"]
    width = max(len(k) for k, _ in rows)
    print(f"chaos on {report.store} (seed {report.seed})")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    extra = report.step_executions - report.step_completions
    print(f"  {'re-executions':<{width}}  {extra} (steps run again after a kill or fault)")
    if report.violations:
        print(f"VIOLATIONS ({len(report.violations)}):")
        for line in report.violations[:50]:
            print(f"  - {line}")
    else:
        print("no violations")


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--db", help="store URL (default: a new SQLite file, or a "
                                     "throwaway PostgreSQL cluster)")
    parser.add_argument("--runs", type=int, default=Config.runs)
    parser.add_argument("--seconds", type=float, default=Config.seconds,
                        help="how long workers are killed")
    parser.add_argument("--workers", type=int, default=Config.workers)
    parser.add_argument("--fault", type=float, default=Config.fault,
                        help="probability that an event insert fails")
    parser.add_argument("--signals", type=int, default=Config.signals)
    parser.add_argument("--updates", type=int, default=Config.updates)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON")
    args = parser.parse_args()
    cfg = Config(store=args.store, db=args.db, runs=args.runs, seconds=args.seconds,
                 workers=args.workers, fault=args.fault, signals=args.signals,
                 updates=args.updates)
    if args.seed is not None:
        cfg.seed = args.seed
    with tempfile.TemporaryDirectory(prefix="duro-chaos-") as tmp, _store_url(cfg, Path(tmp)) \
            as url:
        report = asyncio.run(drive(cfg, url, Path(tmp)))
    _print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=2))
    return 1 if report.violations else 0


@contextlib.contextmanager
def _store_url(cfg: Config, tmp: Path) -> Iterator[str]:
    if cfg.db:
        yield cfg.db
        return
    if cfg.store == "sqlite":
        yield f"sqlite:///{tmp}/chaos.db"
        return
    from tests.pg import Cluster

    cluster = Cluster(local=True).start()
    try:
        yield cluster.fresh_url()
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
