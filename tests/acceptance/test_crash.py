"""kill -9 acceptance test: workflows survive SIGKILL at random moments.

The requirement: a subprocess running workflows is SIGKILLed at random moments
(>= 20 trials in the default suite); after restart every run completes with the right
result; no step completion is recorded twice; executions <= completions + kills.

The app (``apps/crash_app.py``) logs every step *execution* (one line per attempt, with
its pid) before the step returns; the database records every *completion* (an attempt's
outcome event: ``step_completed``, or ``step_retrying`` for the attempt that fails on
purpose). An execution whose outcome was never recorded is *lost*: the process died
between the step's side effect and the commit of its outcome, and the attempt ran again.

How the bound "executions <= completions + kills" is made honest:

* ``test_kill9_sequential`` runs one workflow run at a time (``max_active=1``) whose
  steps are strictly sequential, so at most one step is in flight when a kill lands. It
  asserts the literal bound, and the stronger per-process form: every killed process
  lost at most 1 execution, and the process that was never killed lost none.
* ``test_kill9_parallel_steps`` and ``test_kill9_two_processes`` run ``asyncio.gather``
  of up to ``PAR_WIDTH`` steps in each of up to ``A`` active runs per process, so a kill
  can lose up to ``A * PAR_WIDTH`` in-flight executions, and they assert
  ``executions <= completions + kills * A * PAR_WIDTH`` (per killed process; none lost
  by a process that was not killed), with ``A = max_active``: the worker never holds
  more runs than that, whether it claimed them or adopted them at creation (the
  parallel test starts runs through the worker's own engine to cover adoption).

Kill moments are drawn from a seeded ``random.Random`` (set ``DURO_CRASH_SEED`` to
replay a seed; every assertion message carries it). Every third process is killed
anywhere in the first 0.35 s of the process (import, migration, starting runs, replay);
the rest land up to 0.4 s after the process executed its first step.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).parent / "apps" / "crash_app.py"

# Mirrors of the app's constants (the test keeps its own oracle, see expected_result).
SEQ_STEPS = 8
PAR_WIDTH = 3
MAX_ACTIVE = 4

SEQ_RUNS = 60
SEQ_KILLS = 20
PAR_RUNS = 150
PAR_KILLS = 12
SHARED_RUNS = 250
SHARED_KILLS = 5
SHARED_MAX_ACTIVE = 2

FINAL_TIMEOUT = 90.0  # bounds the run to completion after the last kill


def _seed() -> int:
    env = os.environ.get("DURO_CRASH_SEED")
    return int(env) if env else random.SystemRandom().randrange(2**32)


# -- the oracle ---------------------------------------------------------------------------


def _sync_value(n: int, i: int) -> int:
    return n * 1000 + i * i + 1


def _async_value(n: int, i: int) -> int:
    return n * 1000 + 7 * i + 3


def _flaky_value(n: int, i: int) -> int:
    return n * 31 + i + 5


def expected_result(scenario: str, n: int) -> dict[str, Any]:
    """What run ``n`` of ``scenario`` must return, computed independently of the app."""
    if scenario == "seq":
        values = []
        for i in range(SEQ_STEPS):
            values.append(_sync_value(n, i) if i % 2 == 0 else _async_value(n, i))
            if i == SEQ_STEPS // 2:
                values.append(_flaky_value(n, i))
    else:
        values = [_sync_value(n, 0), _sync_value(n, 1), _async_value(n, 2), _flaky_value(n, 3),
                  _async_value(n, 4), *(_async_value(n, 10 + j) for j in range(PAR_WIDTH)),
                  _sync_value(n, 20), _sync_value(n, 21), _sync_value(n, 30)]
    return {"n": n, "values": values, "total": sum(values)}


# Steps each run executes, counting the failing first attempt of the flaky step.
EXECUTIONS_PER_RUN = {"seq": SEQ_STEPS + 2, "par": 12}


# -- driving the app ------------------------------------------------------------------------


@dataclass
class Harness:
    tmp: Path
    scenario: str
    runs: int
    seed: int
    max_active: int
    lease: float = 1.0
    adopt: bool = False
    rng: random.Random = field(init=False)
    killed: list[int] = field(default_factory=list)  # pids, in kill order
    survivors: list[int] = field(default_factory=list)  # pids that exited 0 on their own
    early_kills: int = 0
    spawned: int = 0
    outputs: dict[int, Path] = field(default_factory=dict)  # pid -> its stdout and stderr

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.db = self.tmp / f"{self.scenario}.db"
        self.log = self.tmp / f"{self.scenario}.executions"
        self.log.touch()

    def ctx(self) -> str:
        return (f"[seed={self.seed} scenario={self.scenario} kills={len(self.killed)}; "
                f"rerun with DURO_CRASH_SEED={self.seed}]")

    def spawn(self) -> subprocess.Popen[bytes]:
        self.spawned += 1
        path = self.tmp / f"app-{self.spawned}.out"
        out = path.open("wb")
        cmd = [sys.executable, str(APP), "--db", str(self.db), "--log", str(self.log),
               "--scenario", self.scenario, "--runs", str(self.runs),
               "--max-active", str(self.max_active), "--lease", str(self.lease),
               "--timeout", str(FINAL_TIMEOUT), *(["--adopt"] if self.adopt else [])]
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        self.outputs[proc.pid] = path
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return self.outputs[proc.pid].read_text(errors="replace")[-3000:]

    def executed_by(self, pid: int) -> bool:
        return f" {pid}\n" in self.log.read_text()

    def kill(self, proc: subprocess.Popen[bytes]) -> bool:
        """SIGKILL the process if it still runs; True if it was killed."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)
        if rc == -signal.SIGKILL:
            self.killed.append(proc.pid)
            return True
        assert rc == 0, f"app exited with {rc} before the kill {self.ctx()}:\n{self.output(proc)}"
        self.survivors.append(proc.pid)
        return False

    def mid_run(self, pid: int) -> bool:
        """Whether ``pid`` executed a step of a run that still has steps to execute (a
        kill now leaves them to another process)."""
        done: dict[str, set[tuple[str, str]]] = defaultdict(set)
        mine: set[str] = set()
        for line in self.log.read_text().splitlines():
            run_id, op, attempt, _, by = line.split()
            done[run_id].add((op, attempt))
            if int(by) == pid:
                mine.add(run_id)
        return any(len(done[run]) < EXECUTIONS_PER_RUN[self.scenario] for run in mine)

    def let_it_run(self, proc: subprocess.Popen[bytes], *, early_ok: bool = True,
                   mid_run: bool = False) -> None:
        """Wait a random moment of this process's life (see the module docstring);
        ``mid_run``: until it has a run with steps left (killed then, at once: a random
        wait let a process near the end of the workload finish its last runs first)."""
        if mid_run:
            deadline = time.monotonic() + 30
            while (proc.poll() is None and not self.mid_run(proc.pid)
                   and time.monotonic() < deadline):
                time.sleep(0.005)
            return
        # Every third process is killed early (a count, not a draw: the tests require
        # at least half the kills to hit running workflows, which a draw could miss).
        if early_ok and self.spawned % 3 == 1:
            self.early_kills += 1
            wait = self.rng.uniform(0.0, 0.35)
        else:
            deadline = time.monotonic() + 30
            while (proc.poll() is None and not self.executed_by(proc.pid)
                   and time.monotonic() < deadline):
                time.sleep(0.005)
            wait = self.rng.uniform(0.0, 0.4)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)

    def kill_trials(self, kills: int) -> None:
        """Start the app and SIGKILL it at a random moment until ``kills`` kills landed."""
        target = len(self.killed) + kills
        for _ in range(kills * 4):
            if len(self.killed) >= target:
                break
            proc = self.spawn()
            self.let_it_run(proc)
            self.kill(proc)
        assert len(self.killed) >= target, f"could not land {kills} kills {self.ctx()}"

    def run_to_completion(self, proc: subprocess.Popen[bytes] | None = None) -> None:
        proc = proc or self.spawn()
        try:
            rc = proc.wait(timeout=FINAL_TIMEOUT + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            pytest.fail(f"the app did not finish in {FINAL_TIMEOUT + 30}s {self.ctx()}:\n"
                        f"{self.output(proc)}")
        assert rc == 0, f"the final app exited with {rc} {self.ctx()}:\n{self.output(proc)}"
        self.survivors.append(proc.pid)


# -- checking the outcome ---------------------------------------------------------------------


@dataclass
class Figures:
    kills: int
    mid_run_kills: int
    executions: int
    completions: int
    lost: int
    max_lost_by_one_kill: int


def verify(h: Harness, max_lost_per_kill: int) -> Figures:
    """Check the database and the executions log after every run was driven to the end."""
    ctx = h.ctx()
    conn = sqlite3.connect(f"file:{h.db}?mode=ro", uri=True)
    try:
        runs = conn.execute(
            "SELECT workflow_id, run_id, status, result, history_len FROM runs").fetchall()
        events = conn.execute(
            "SELECT run_id, seq, kind, op, name, meta FROM events ORDER BY run_id, seq"
        ).fetchall()
    finally:
        conn.close()

    # Every run completed, once per workflow id, with the right result.
    ids = Counter(r[0] for r in runs)
    assert sorted(ids) == sorted(f"{h.scenario}-{n}" for n in range(h.runs)), ctx
    assert all(c == 1 for c in ids.values()), f"a workflow id has several runs {ctx}"
    run_of = {r[1]: r for r in runs}
    for workflow_id, run_id, status, result, _ in runs:
        assert status == "completed", f"{workflow_id} ({run_id}) is {status} {ctx}"
        n = int(workflow_id.rsplit("-", 1)[1])
        assert json.loads(result) == expected_result(h.scenario, n), \
            f"{workflow_id} completed with a wrong result {ctx}"

    # Histories: dense seq, one start and one end, each outcome recorded at most once.
    by_run: dict[str, list[Any]] = defaultdict(list)
    for ev in events:
        by_run[ev[0]].append(ev)
    assert set(by_run) == set(run_of), f"events of unknown runs or runs without events {ctx}"
    completions: dict[tuple[str, int, int], str] = {}  # (run, op, attempt) -> step name
    for run_id, evs in by_run.items():
        seqs = [e[1] for e in evs]
        assert seqs == list(range(len(evs))), f"seq of run {run_id} is not dense {ctx}"
        assert run_of[run_id][4] == len(evs), f"history_len of run {run_id} is wrong {ctx}"
        kinds = [e[2] for e in evs]
        assert kinds[0] == "run_started" and kinds[-1] == "run_completed", ctx
        assert kinds.count("run_started") == 1 and kinds.count("run_completed") == 1, ctx
        assert "step_failed" not in kinds, f"a step of run {run_id} failed {ctx}"
        done = Counter(e[3] for e in evs if e[2] == "step_completed")
        twice = [op for op, c in done.items() if c > 1]
        assert not twice, f"run {run_id}: step completion recorded twice at ops {twice} {ctx}"
        fired = Counter(e[3] for e in evs if e[2] == "timer_fired")
        assert all(c == 1 for c in fired.values()), f"timer fired twice in {run_id} {ctx}"
        retried = [e for e in evs if e[2] == "step_retrying"]
        assert retried and all(e[4] == "crash.flaky_step" for e in retried), \
            f"run {run_id}: the flaky step was not retried (or another step was) {ctx}"
        for _, _, kind, op, name, meta in evs:
            if kind in ("step_completed", "step_retrying"):
                key = (run_id, op, json.loads(meta)["attempt"])
                assert key not in completions, f"attempt {key} recorded twice {ctx}"
                completions[key] = name
    assert len(completions) == h.runs * EXECUTIONS_PER_RUN[h.scenario], ctx

    # The executions log: (run, op, attempt) -> pids that executed it, in time order.
    executors: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    n_exec = 0
    for line in h.log.read_text().splitlines():
        run_id, op, attempt, name, pid = line.split()
        key = (run_id, int(op), int(attempt))
        assert key in completions, f"execution {line!r} matches no recorded attempt {ctx}"
        assert completions[key] == name, f"execution {line!r}: other step recorded {ctx}"
        assert int(pid) not in executors[key], \
            f"process {pid} executed attempt {key} twice {ctx}"
        executors[key].append(int(pid))
        n_exec += 1
    missing = set(completions) - set(executors)
    assert not missing, f"completions recorded without an execution: {sorted(missing)[:5]} {ctx}"

    # Lost executions. An attempt runs again only if no earlier execution's outcome was
    # committed, so of the executions of one attempt only the last was recorded: the
    # others were lost by the (killed) processes that ran them.
    lost_by: Counter[int] = Counter()
    for pids in executors.values():
        lost_by.update(pids[:-1])
    lost = sum(lost_by.values())
    killed = set(h.killed)
    not_killed = {p: c for p, c in lost_by.items() if p not in killed}
    assert not not_killed, f"processes that were never killed lost executions {not_killed} {ctx}"
    worst = max((lost_by[p] for p in killed), default=0)
    assert worst <= max_lost_per_kill, \
        f"one kill lost {worst} executions, more than the {max_lost_per_kill} in flight {ctx}"
    kills = len(h.killed)
    assert n_exec == len(completions) + lost, ctx
    assert n_exec <= len(completions) + kills * max_lost_per_kill, (
        f"executions {n_exec} > completions {len(completions)} + kills {kills} "
        f"x {max_lost_per_kill} in flight {ctx}")
    if max_lost_per_kill == 1:
        assert n_exec <= len(completions) + kills, ctx  # the requirement, literally

    mid_run = sum(1 for p in h.killed if h.executed_by(p))
    return Figures(kills=kills, mid_run_kills=mid_run, executions=n_exec,
                   completions=len(completions), lost=lost, max_lost_by_one_kill=worst)


def _report(name: str, h: Harness, figures: Figures, started: float) -> None:
    print(f"\n{name}: seed={h.seed} processes={h.spawned} early_kills={h.early_kills} "
          f"{figures} in {time.monotonic() - started:.1f}s")


# -- the tests ---------------------------------------------------------------------------------


def test_kill9_sequential(tmp_path: Path) -> None:
    """20 kills with one step in flight at a time: the literal executions bound holds."""
    started = time.monotonic()
    h = Harness(tmp_path, "seq", SEQ_RUNS, _seed(), max_active=1)
    h.kill_trials(SEQ_KILLS)
    h.run_to_completion()
    figures = verify(h, max_lost_per_kill=1)
    assert figures.kills >= 20, h.ctx()
    # The kill moments must have hit running workflows, not only process startups.
    assert figures.mid_run_kills >= SEQ_KILLS // 2, f"{figures} {h.ctx()}"
    _report("sequential", h, figures, started)


def test_kill9_parallel_steps(tmp_path: Path) -> None:
    """Kills with parallel steps, in a process that creates (adopts) the runs it runs."""
    started = time.monotonic()
    h = Harness(tmp_path, "par", PAR_RUNS, _seed(), max_active=MAX_ACTIVE, adopt=True)
    h.kill_trials(PAR_KILLS)
    h.run_to_completion()
    # 2x: adopted runs can exceed max_active while runs are started (module docstring).
    figures = verify(h, max_lost_per_kill=MAX_ACTIVE * PAR_WIDTH)
    assert figures.mid_run_kills >= PAR_KILLS // 2, f"{figures} {h.ctx()}"
    _report("parallel", h, figures, started)


def test_kill9_two_processes(tmp_path: Path) -> None:
    """Two processes share the database; one of them is killed at a time.

    Each killed process is replaced at once (the survivor or the replacement takes its
    runs over), except the last one: the survivor alone must then take over the runs it
    held and finish every run. On the same host a dead pid expires its lease at once
    (checked every lease/2); the lease is long (5 s) so that a live process starved of
    CPU on a busy machine is not taken over, which would lose executions without a kill.
    """
    started = time.monotonic()
    h = Harness(tmp_path, "par", SHARED_RUNS, _seed(), max_active=SHARED_MAX_ACTIVE,
                lease=5.0)
    procs = [h.spawn(), h.spawn()]
    try:
        for _ in range(SHARED_KILLS * 4):
            victim = h.rng.randrange(2)
            other = procs[1 - victim]
            last = len(h.killed) == SHARED_KILLS - 1
            # The first and last kills land mid-run, so that there are runs to take over.
            h.let_it_run(procs[victim], early_ok=0 < len(h.killed) < SHARED_KILLS - 1,
                         mid_run=last)
            assert other.poll() is None, (
                f"the survivor exited (rc {other.returncode}) before the kill: the workload "
                f"is too small for this machine {h.ctx()}")
            h.kill(procs[victim])
            if len(h.killed) >= SHARED_KILLS:
                break
            procs[victim] = h.spawn()
        assert last and len(h.killed) == SHARED_KILLS, f"could not land the kills {h.ctx()}"
        h.run_to_completion(other)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    figures = verify(h, max_lost_per_kill=SHARED_MAX_ACTIVE * PAR_WIDTH)
    # The survivor took over runs of the last killed process: it executed steps of runs
    # that the killed process had executed steps of.
    pids_by_run: dict[str, set[int]] = defaultdict(set)
    for line in h.log.read_text().splitlines():
        run_id, *_, pid = line.split()
        pids_by_run[run_id].add(int(pid))
    dead, survivor = h.killed[-1], other.pid
    taken = [r for r, pids in pids_by_run.items() if {dead, survivor} <= pids]
    assert taken, f"the survivor took over no run of the killed process {h.ctx()}"
    _report("two processes", h, figures, started)
