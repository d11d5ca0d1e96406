"""Several ``duro worker`` processes on one database share the ready runs: 200 runs
started at once, while two workers are up, are split between them (each takes a fair
share, not the first to claim all of them), and no step runs twice.

Real worker processes (the CLI) on a real SQLite file and on PostgreSQL; every wait is
bounded (the workers' ready lines, the results' timeout).
"""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duro
from tests.conftest import run

RUNS = 200

APP = '''
import asyncio, os
import duro

LOG = os.environ["FAIR_LOG"]

@duro.step
async def fair_work(i: int, k: int) -> int:
    with open(LOG, "a") as f:  # one line a step execution (O_APPEND: whole lines)
        f.write(f"{i} {k} {os.getpid()}\\n")
    await asyncio.sleep(0.1)  # runs long enough to be held while the other claims
    return os.getpid()

@duro.workflow
async def fair_job(i: int) -> int:
    pid = 0
    for k in range(3):
        pid = await fair_work(i, k)
    return pid
'''


def _worker(app_dir: Path, url: str, log: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    src = str(Path(duro.__file__).resolve().parent.parent)
    env.update(PYTHONPATH=os.pathsep.join([src, str(app_dir)]), FAIR_LOG=str(log),
               NO_COLOR="1")
    return subprocess.Popen([sys.executable, "-m", "duro", "--db", url, "worker", "fair_app"],
                            cwd=app_dir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_workers_on_one_database_share_the_runs(any_db_url: str, tmp_path: Path
                                                    ) -> None:
    (tmp_path / "fair_app.py").write_text(textwrap.dedent(APP))
    log = tmp_path / "steps.log"
    sys.path.insert(0, str(tmp_path))
    os.environ["FAIR_LOG"] = str(log)
    try:
        import fair_app  # the workflow, to start its runs from here
    finally:
        sys.path.remove(str(tmp_path))

    async def create() -> None:
        async with duro.Engine(any_db_url, worker=False):
            pass  # the schema, before two processes race to migrate it

    run(create())
    workers = [_worker(tmp_path, any_db_url, log) for _ in range(2)]
    try:
        for proc in workers:  # both registered before the runs exist
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "duro worker ready" in line, line

        async def main() -> collections.Counter[int]:
            async with duro.Engine(any_db_url, worker=False) as engine:
                handles = await asyncio.gather(*[
                    engine.start(fair_app.fair_job, i, id=f"fair-{i}") for i in range(RUNS)])
                pids = await asyncio.gather(*[h.result(timeout=60) for h in handles])
                return collections.Counter(pids)

        by_pid = run(main(), timeout=90)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.communicate(timeout=30)
    assert set(by_pid) == {p.pid for p in workers}, by_pid
    print(f"\nruns completed by each worker: {sorted(by_pid.values())}")
    assert min(by_pid.values()) >= RUNS // 4, by_pid  # each a fair share, not one all
    lines = log.read_text().split("\n")[:-1]
    executed = collections.Counter(tuple(line.split()[:2]) for line in lines)
    assert len(executed) == RUNS * 3 and set(executed.values()) == {1}  # none twice
    # every step of a run on the worker that claimed it: runs were not moved about
    owners = {(i, k): pid for i, k, pid in (line.split() for line in lines)}
    assert all(len({owners[(str(i), str(k))] for k in range(3)}) == 1 for i in range(RUNS))
