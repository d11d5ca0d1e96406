"""Shared budgets across worker processes on PostgreSQL (issue 17, item 2): 50
concurrent runs of one tenant, served by 3 worker processes, against the tenant's daily
budget: the spend recorded (in the budget table, and summed from every history) never
passes the budget by more than one step's cost; and a reservation held by a worker
killed mid-step (kill -9) does not block the tenant: it goes when another worker
recovers the run."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import duro
from tests.acceptance.apps.budget_tenant import COST, tenant_agent, tenant_budget
from tests.acceptance.test_postgres_workers import (  # noqa: F401 - the fixture
    WorkerProc,
    attempts,
    query,
    spawn,
    wait_for,
    workers,
)
from tests.conftest import run

pytestmark = pytest.mark.postgres

LIMIT = 2.0
"""The tenant's daily budget: 20 calls at COST."""


async def _start(url: str, ids: list[str], steps: int, hang_on: str = "") -> None:
    async with duro.Client(url) as client:
        await asyncio.gather(*(client.start(tenant_agent, i, steps, hang_on, id=i,
                                            budget=tenant_budget("acme", LIMIT))
                               for i in ids))


async def _results(url: str, ids: list[str], timeout: float) -> dict[str, int]:
    async with duro.Client(url) as client:
        got = await asyncio.gather(*(client.get_handle(i).result(timeout=timeout)
                                     for i in ids))
        return dict(zip(ids, got, strict=True))


async def _recorded(url: str, ids: list[str]) -> tuple[list[duro.BudgetSpend], float]:
    """The budget table's rows, and the cost summed from every run's history."""
    async with duro.Client(url) as client:
        rows = await client.budgets.list("tenant:acme")
        usages = await asyncio.gather(*(client.get_handle(i).usage() for i in ids))
        return rows, sum(u.cost for u in usages)


def test_fifty_runs_of_a_tenant_on_three_workers_keep_to_its_daily_budget(
        pg_url: str, tmp_path: Path, workers: list[WorkerProc]) -> None:  # noqa: F811
    workers += [spawn(pg_url, f"w{i}", tmp_path, app="budget_tenant", poll=0.05, max_active=20)
                for i in range(3)]
    ids = [f"agent-{i}" for i in range(50)]
    began = time.monotonic()
    run(_start(pg_url, ids, 3))  # 150 calls asked for, 20 affordable
    done = run(_results(pg_url, ids, 60), timeout=90)
    took = time.monotonic() - began
    (row,), from_histories = run(_recorded(pg_url, ids))
    calls = sum(done.values())
    log = attempts([w.log for w in workers])
    ran = [entry for entry in log if entry[0] == "start"]
    assert row.spent_usd == pytest.approx(from_histories)  # the table agrees with the runs
    assert row.spent_usd <= LIMIT + COST + 1e-9, (row, calls)
    assert row.spent_usd == pytest.approx(calls * COST)
    assert len(ran) == calls  # a refused call never reached the model
    assert calls >= LIMIT / COST  # and the budget was used, not refused early
    assert row.settled == calls and row.in_flight == 0
    assert row.limit_usd == LIMIT and row.period == 86400.0
    assert row.window_start == (time.time() // 86400) * 86400 or took > 60
    assert len({name for _, _, _, name, _ in ran}) > 1  # the processes shared the work
    print(f"50 runs x 3 workers: {calls} calls, spent {row.spent_usd:.2f} of {LIMIT}, "
          f"{took:.1f}s")


def test_a_killed_workers_reservation_is_released_by_the_recovery(
        pg_url: str, tmp_path: Path, workers: list[WorkerProc]) -> None:  # noqa: F811
    first = spawn(pg_url, "a", tmp_path, app="budget_tenant", lease=1.0, poll=0.05)
    workers.append(first)
    run(_start(pg_url, ["stuck"], 1, hang_on="a"))  # its call hangs in worker a
    wait_for(lambda: any(e[1] == "stuck" for e in attempts([first.log])), 20,
             "the call started in worker a")
    held: list[Any] = run(query(pg_url, "SELECT run_id FROM budget_reservations"))
    assert len(held) == 1  # the hanging call reserved its (unknown) cost
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    # Another run of the tenant: with no estimate yet, it would wait for the stuck call
    # for ever if the lost worker's reservation held.
    run(_start(pg_url, ["next"], 1))
    workers.append(spawn(pg_url, "b", tmp_path, app="budget_tenant", lease=1.0, poll=0.05))
    assert run(_results(pg_url, ["stuck", "next"], 30), timeout=40) == {"stuck": 1,
                                                                        "next": 1}
    (row,), cost = run(_recorded(pg_url, ["stuck", "next"]))
    assert row.spent_usd == pytest.approx(2 * COST) == pytest.approx(cost)
    assert run(query(pg_url, "SELECT run_id FROM budget_reservations")) == []
