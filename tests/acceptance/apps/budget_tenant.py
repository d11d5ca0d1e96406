"""A tenant's agent under a shared daily budget, for the multi-process budget tests:
importable without side effects (the test starts runs with it;
``apps/pg_worker.py --app budget_tenant`` serves it)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import TextIO

import duro

COST = 0.1
"""What one model call costs (US dollars)."""


class Log:
    """Where this process records step attempts; set by the worker before it serves."""

    name = "?"
    file: TextIO | None = None


def tenant_budget(tenant: str, usd: float) -> duro.Budget:
    return duro.Budget(usd=usd, key=f"tenant:{tenant}", period=timedelta(days=1))


@duro.step(name="budget.call_model", budgeted=True)
async def call_model(run: str, i: int, hang_on: str) -> int:
    assert Log.file is not None, "the worker process sets Log.file before serving"
    Log.file.write(f"start {run} {i} {Log.name} {time.time():.6f}\n")
    if hang_on == Log.name:
        await asyncio.sleep(3600)  # the test kills this worker meanwhile
    await asyncio.sleep(0.01)
    duro.record_usage(model="test-model", input_tokens=10, output_tokens=5, cost=COST)
    Log.file.write(f"done {run} {i} {Log.name} {time.time():.6f}\n")
    return i


@duro.workflow(name="budget.tenant_agent")
async def tenant_agent(run: str, steps: int, hang_on: str = "") -> int:
    """Calls the model ``steps`` times or until the tenant's budget stops it."""
    done = 0
    try:
        for i in range(steps):
            await call_model(run, i, hang_on)
            done += 1
    except duro.BudgetExceededError:
        pass
    return done


WORKFLOWS = [tenant_agent]
