"""A run whose code kills its worker process is parked after ``max_recoveries`` deaths in
a row (``RecoveryLimitError``), instead of taking down every worker in turn forever; the
other runs are not held back, and the parked run resumes once told to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import duro
from tests.acceptance.apps.poison_app import healthy, killer
from tests.conftest import run

APP = Path(__file__).parent / "apps" / "poison_app.py"
LIMIT = 3


def _worker(url: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, str(APP), url, str(LIMIT)], capture_output=True,
                          timeout=60, cwd=Path(__file__).parents[2])


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres",
                                                          marks=pytest.mark.postgres)])
def test_a_run_that_kills_its_workers_is_parked(store: str, tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path}/poison.db" if store == "sqlite"
           else request.getfixturevalue("pg_url"))

    async def start() -> None:
        async with duro.Engine(url, worker=False) as client:
            await client.start(killer, id="killer")
            await client.start(healthy, 5, id="healthy")

    run(start())
    deaths = 0
    for _ in range(LIMIT + 3):
        proc = _worker(url)
        if proc.returncode == 0:
            break
        assert proc.returncode == -9, proc.stderr.decode()[-2000:]
        deaths += 1
    else:
        pytest.fail(f"the workers kept dying ({deaths} deaths)")
    # The first worker dies on its first take-up; LIMIT recoveries follow, each dying.
    assert deaths == LIMIT + 1

    async def check() -> None:
        async with duro.Engine(url, worker=False) as client:
            assert await client.get_handle("healthy").result(timeout=5) == 10
            info = await client.get_handle("killer").describe()
            assert info.status.value == "parked"
            assert info.error is not None and info.error.type == "RecoveryLimitError"
            assert "killing the worker process" in info.error.message
            await client.resume("killer")  # after a fix, say: it runs again
            assert (await client.get_handle("killer").describe()).status.value == "pending"

    run(check())
