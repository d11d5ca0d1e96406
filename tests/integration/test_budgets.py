"""Budgets the engine enforces (issue 17, item 2), on both stores: a run's own budget
stops a looping agent (``BudgetExceededError`` at the step's ``await``, recorded, the
same on replay), failed attempts count, the spend survives a restart; a shared budget
(per key and window) is charged with each outcome in the same transaction and its
reservations of lost attempts are released; ``on_exceeded="pause"`` waits for a raise."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

import duro
from duro.errors import InvalidArgumentError
from duro.testing import replay
from tests.conftest import run, wait_until

_calls: Counter[str] = Counter()


@duro.step(name="budget.think", budgeted=True)
async def think(i: int) -> str:
    _calls["think"] += 1
    duro.record_usage(model="m", input_tokens=100, output_tokens=50, cost=0.25)
    return f"thought {i}"


@duro.step(name="budget.flaky", budgeted=True,
           retry=duro.RetryPolicy(max_attempts=5, initial_interval=0.01))
async def flaky(i: int) -> str:
    _calls["flaky"] += 1
    duro.record_usage(model="m", input_tokens=10, output_tokens=0, cost=0.25)
    raise ConnectionError("the model server hung up")


@duro.workflow(name="budget.agent")
async def agent(limit: int) -> dict[str, Any]:
    """A looping agent: thinks until its budget stops it, then wraps up."""
    thoughts: list[str] = []
    try:
        for i in range(limit):
            thoughts.append(await think(i))
    except duro.BudgetExceededError as exc:
        return {"thoughts": thoughts, "budget": exc.budget, "unit": exc.unit,
                "limit": exc.limit, "spent": exc.spent}
    return {"thoughts": thoughts}


@duro.workflow(name="budget.default", budget=duro.Budget(tokens=400))
async def by_default() -> dict[str, Any]:
    return await agent.fn(100)


@duro.workflow(name="budget.retries")
async def retries() -> str:
    try:
        return await flaky(0)
    except duro.BudgetExceededError as exc:
        return f"stopped at {exc.spent:g}"


def test_a_run_budget_stops_a_looping_agent(any_db_url: str) -> None:
    _calls.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(agent, 100, id="loop-1",
                                        budget=duro.Budget(usd=1.0))
            out = await handle.result(timeout=30)
            # 0.25 a step: 4 steps reach the dollar, the fifth is refused, not run.
            assert out == {"thoughts": [f"thought {i}" for i in range(4)], "budget": "run",
                           "unit": "usd", "limit": 1.0, "spent": 1.0}
            assert _calls["think"] == 4
            events = await handle.history()
            (refused,) = [e for e in events if e.kind == "step_failed"]
            assert refused.meta["exceeded"] == {"budget": "run", "unit": "usd",
                                                "limit": 1.0, "spent": 1.0}
            assert "usage" not in refused.meta
            assert (await handle.usage()).cost == pytest.approx(1.0)
            started = next(e for e in events if e.kind == "run_started")
            assert started.meta["budgets"] == [{"usd": 1.0, "tokens": None}]
            # The workflow's own budget when the start gives none: 150 tokens a step.
            default = await engine.start(by_default, id="loop-default")
            got = await default.result(timeout=30)
            assert (len(got["thoughts"]), got["unit"], got["spent"]) == (3, "tokens", 450)

        # Replay (a query's, the checker's) raises the same error at the same step.
        replayed = replay(agent, await _history(any_db_url, "loop-1"))
        assert (replayed.status, replayed.result) == ("completed", out)

    run(main())


async def _history(url: str, workflow_id: str) -> list[duro.Event]:
    async with duro.Client(url) as client:
        return await client.get_handle(workflow_id).history()


def test_failed_attempts_count_and_a_restart_keeps_the_spend(any_db_url: str) -> None:
    _calls.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(retries, id="retries-1",
                                        budget=duro.Budget(usd=0.5))
            # Two failed attempts spend 0.5: the third is refused by the budget before
            # the retry policy's five attempts are used up.
            assert await handle.result(timeout=30) == "stopped at 0.5"
            assert _calls["flaky"] == 2

    run(main())


def test_bad_budgets_are_refused_and_nothing_is_stored(any_db_url: str) -> None:
    for bad in (dict(), dict(usd=0), dict(usd=-1.0), dict(usd=math.inf), dict(usd=math.nan),
                dict(usd=True), dict(tokens=1.5), dict(tokens=0), dict(usd=1, key=""),
                dict(usd=1, key="a\x00"), dict(usd=1, period=60),
                dict(usd=1, key="k", period=0.5), dict(usd=1, key="k", period="1d"),
                dict(usd=1, on_exceeded="ignore")):
        with pytest.raises(InvalidArgumentError):
            duro.Budget(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        duro.step(budgeted="yes")(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(InvalidArgumentError):
        duro.step(budgeted=True, queue="gpu")(lambda: None)
    assert duro.Budget(usd=1, key="t", period=timedelta(days=1)).period == 86400.0

    async def main() -> None:
        async with duro.Client(any_db_url) as client:
            for bad in ("x", [duro.Budget(usd=1), duro.Budget(tokens=5)], [1]):
                with pytest.raises(InvalidArgumentError):
                    await client.start(agent, 1, id="bad-budget", budget=bad)  # type: ignore[arg-type]
            assert await client.list() == []

    run(main())


@duro.workflow(name="budget.pausing")
async def pausing(rounds: int) -> dict[str, Any]:
    """Thinks ``rounds`` times, waits for "go", then loops until its budget stops it."""
    thoughts = [await think(i) for i in range(rounds)]
    await duro.wait_for_signal("go")
    return await agent.fn(100 - rounds) | {"before": len(thoughts)}


def test_a_restart_keeps_the_spend(any_db_url: str) -> None:
    _calls.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(pausing, 2, id="restart-1",
                                        budget=duro.Budget(usd=1.0))
            await wait_until(lambda: _calls["think"] == 2)
            await wait_until(lambda: _status(handle, "suspended"))
        # Another engine (the first one is gone): the spend so far is in the history.
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = engine.get_handle("restart-1")
            await handle.signal("go")
            out = await handle.result(timeout=30)
            assert (out["before"], len(out["thoughts"]), out["spent"]) == (2, 2, 1.0)
            assert _calls["think"] == 4

    run(main())


async def _status(handle: duro.WorkflowHandle[Any], status: str) -> bool:
    return (await handle.describe()).status == status


def test_pause_then_raise_the_budget(any_db_url: str) -> None:
    _calls.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(agent, 6, id="pause-1",
                                        budget=duro.Budget(usd=0.5, on_exceeded="pause"))
            # Two calls spend the half dollar; the third waits, the run suspended.
            await wait_until(lambda: _status(handle, "suspended"), timeout=20)
            assert _calls["think"] == 2
            await handle.set_budget(duro.Budget(usd=1.0, on_exceeded="pause"))
            await wait_until(lambda: _calls["think"] == 4, timeout=20)
            await wait_until(lambda: _status(handle, "suspended"), timeout=20)
            await handle.set_budget(duro.Budget(usd=10.0))
            assert await handle.result(timeout=30) == {
                "thoughts": [f"thought {i}" for i in range(6)]}
            events = await handle.history()
            assert not [e for e in events if e.kind == "step_failed"]
            raised = [e for e in events if e.kind == "signal_received"]
            assert [e.data["usd"] for e in raised] == [1.0, 10.0]  # the audit trail
            with pytest.raises(InvalidArgumentError):
                await handle.set_budget({"usd": 5})  # type: ignore[arg-type]

    run(main())


def test_a_shared_budget_is_charged_with_each_outcome(any_db_url: str) -> None:
    _calls.clear()
    shared = duro.Budget(usd=1.0, key="tenant:t1", period=timedelta(days=1))

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handles = [await engine.start(agent, 3, id=f"shared-{i}", budget=shared)
                       for i in range(6)]
            outs = [await h.result(timeout=30) for h in handles]
            calls = sum(len(o["thoughts"]) for o in outs)
            costs = [(await h.usage()).cost for h in handles]
            (row,) = await engine.budgets.list()
            # 0.25 a call: four calls spend the dollar; the others were refused.
            assert (calls, _calls["think"]) == (4, 4)
            assert row.spent_usd == pytest.approx(sum(costs)) == pytest.approx(1.0)
            assert (row.key, row.settled, row.in_flight, row.limit_usd) == (
                "tenant:t1", 4, 0, 1.0)
            refused = [o for o in outs if "budget" in o]
            assert {(o["budget"], o["unit"], o["limit"]) for o in refused} == {
                ("tenant:t1", "usd", 1.0)}
            # An operator raises today's limit: new runs of the tenant go on.
            raised = await engine.budgets.set_limit("tenant:t1", usd=1.5)
            assert (raised.limit_usd, raised.spent_usd) == (1.5, pytest.approx(1.0))
            more = await engine.start(agent, 5, id="shared-more", budget=shared)
            assert len((await more.result(timeout=30))["thoughts"]) == 2
            with pytest.raises(InvalidArgumentError):
                await engine.budgets.set_limit("tenant:nobody", usd=1)
            with pytest.raises(InvalidArgumentError):
                await engine.budgets.set_limit("tenant:t1", usd=-1)
            assert await engine.budgets.list("tenant:other") == []

    run(main())


def test_duro_budgets_lists_and_sets_limits(tmp_path: Any) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/duro.db"

    async def main() -> None:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            handle = await engine.start(agent, 2, id="cli-1",
                                        budget=duro.Budget(usd=5, key="tenant:cli"))
            await handle.result(timeout=30)

    run(main())

    def duro_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "duro", "--db", url, *args],
                              capture_output=True, text=True, timeout=60)

    listed = duro_cli("budgets")
    assert listed.returncode == 0, listed.stderr
    lines = [line.split() for line in listed.stdout.splitlines()]
    assert lines[0][:2] == ["KEY", "WINDOW"]
    assert lines[1] == ["tenant:cli", "all", "time", "0.5000", "5.0000", "300", "-", "2", "0"]
    raised = duro_cli("budget", "set-limit", "tenant:cli", "--usd", "7.5", "--json")
    assert raised.returncode == 0, raised.stderr
    assert '"limit_usd":7.5' in raised.stdout.replace(" ", "")
    for bad in (["tenant:cli", "--usd", "-1"], ["tenant:none", "--usd", "1"]):
        refused = duro_cli("budget", "set-limit", *bad)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr


def test_a_paused_run_goes_on_once_its_shared_budget_is_raised(any_db_url: str) -> None:
    """``on_exceeded="pause"`` on a shared budget: the run waits (suspended); an
    operator raises the key's limit; at its next re-check (every 30 s of the engine's
    clock: moved here by hand) the paused step is admitted and the run completes."""
    _calls.clear()
    clock = duro.ManualClock(start=1_800_000_000.0 + 12 * 3600)  # midday: one window
    shared = duro.Budget(usd=0.5, key="tenant:p1", period=timedelta(days=1),
                         on_exceeded="pause")

    async def main() -> None:
        async with duro.Engine(any_db_url, clock=clock, poll_interval=0.02) as engine:
            handle = await engine.start(agent, 4, id="shared-pause", budget=shared)
            await wait_until(lambda: _status(handle, "suspended"), timeout=20)
            assert _calls["think"] == 2  # the half dollar spent: the third call waits
            clock.advance(31)  # a re-check with the limit unchanged: still paused
            await wait_until(lambda: _status(handle, "suspended"), timeout=20)
            assert _calls["think"] == 2
            await engine.budgets.set_limit("tenant:p1", usd=1.0)
            clock.advance(31)
            assert await handle.result(timeout=30) == {
                "thoughts": [f"thought {i}" for i in range(4)]}
            (row,) = await engine.budgets.list("tenant:p1")
            assert row.spent_usd == pytest.approx(1.0) and row.limit_usd == 1.0
            assert not [e for e in await handle.history() if e.kind == "step_failed"]

    run(main())
