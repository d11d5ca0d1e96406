"""``Client.stats()`` on both stores (issue 18, item 4): a mix of runs (completed, failed
after retries, cancelled, terminated, still live, a step that fails once then succeeds),
and every figure checked against one computed here from the raw histories
(``handle.history()``), not through the implementation's helpers."""

from __future__ import annotations

import contextlib
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import duro
from duro.client import Stats
from duro.store._base._stats import BUCKET_ERROR
from tests.conftest import run, wait_until

_tries: Counter[str] = Counter()


@duro.step(name="stats.flaky", retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01))
async def flaky(key: str) -> str:
    _tries[key] += 1
    if _tries[key] == 1:
        raise KeyError(key)
    return key


@duro.step(name="stats.fast")
async def fast(n: int) -> int:
    return n + 1


@duro.step(name="stats.broken",
           retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01))
async def broken(n: int) -> int:
    raise ValueError(f"broken {n}")


@duro.workflow(name="stats.ok")
async def ok(key: str) -> int:
    await flaky(key)
    return await fast(1) + await fast(2)


@duro.workflow(name="stats.bad")
async def bad(n: int) -> int:
    await fast(n)
    return await broken(n)


@duro.workflow(name="stats.wait")
async def wait() -> bool:
    return await duro.wait_for_signal("go", type=bool)


_KIND_STATUS = {"run_completed": "completed", "run_failed": "failed",
                "run_cancelled": "cancelled", "run_terminated": "terminated",
                "run_timed_out": "timed_out", "run_continued_as_new": "continued_as_new"}


def _nearest_rank(values: list[float], p: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def _expected(runs: list[tuple[Any, list[Any]]]) -> dict[str, Any]:
    """The figures, from each run's read model and raw history alone."""
    workflows: dict[str, Counter[str]] = defaultdict(Counter)
    run_durations: dict[str, list[float]] = defaultdict(list)
    steps: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    step_durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    errors: Counter[tuple[str, str | None, str]] = Counter()
    for info, events in runs:
        name = info.workflow_name
        last = events[-1].kind if events else None
        status = _KIND_STATUS.get(last or "", "live")
        workflows[name][status] += 1
        workflows[name]["started"] += 1
        if info.closed_at is not None:
            run_durations[name].append((info.closed_at - info.created_at).total_seconds())
        if status in ("failed", "cancelled", "terminated", "timed_out") \
                and isinstance(events[-1].data, dict):
            errors[(name, None, events[-1].data["type"])] += 1
        for e in events:
            if e.kind not in ("step_completed", "step_retrying", "step_failed"):
                continue
            key = (name, e.name)
            steps[key][e.kind] += 1
            if e.meta.get("duration") is not None:
                step_durations[key].append(e.meta["duration"])
            if e.kind != "step_completed":
                errors[(name, e.name, e.data["type"])] += 1
    return {"workflows": workflows, "run_durations": run_durations, "steps": steps,
            "step_durations": step_durations, "errors": errors}


def _check_percentiles(got: Any, values: list[float]) -> None:
    assert got.count == len(values)
    for p in (50, 95, 99):
        want = _nearest_rank(values, p)
        if want is None:
            assert getattr(got, f"p{p}") is None
        else:
            # Bucketed (docs/observability.md): within BUCKET_ERROR of the value measured,
            # plus the read model's microsecond rounding (the store keeps floats).
            assert abs(getattr(got, f"p{p}") - want) <= BUCKET_ERROR * abs(want) + 4e-6


def _check(stats: Stats, runs: list[tuple[Any, list[Any]]]) -> None:
    want = _expected(runs)
    assert [w.workflow for w in stats.workflows] == sorted(want["workflows"])
    for w in stats.workflows:
        c = want["workflows"][w.workflow]
        assert (w.started, w.completed, w.failed, w.cancelled, w.terminated, w.timed_out,
                w.continued_as_new, w.live) == (
            c["started"], c["completed"], c["failed"], c["cancelled"], c["terminated"],
            c["timed_out"], c["continued_as_new"], c["live"])
        assert w.completion_rate == c["completed"] / c["started"]
        assert w.failure_rate == c["failed"] / c["started"]
        _check_percentiles(w.durations, want["run_durations"][w.workflow])
    assert [(s.workflow, s.step) for s in stats.steps] == sorted(want["steps"])
    for s in stats.steps:
        c = want["steps"][(s.workflow, s.step)]
        assert (s.attempts, s.completed, s.retries, s.failed) == (
            sum(c.values()), c["step_completed"], c["step_retrying"], c["step_failed"])
        assert s.failures == c["step_retrying"] + c["step_failed"]
        _check_percentiles(s.durations, want["step_durations"][(s.workflow, s.step)])
    assert {(e.workflow, e.step, e.type): e.count for e in stats.errors} == \
        dict(want["errors"])
    counts = [e.count for e in stats.errors]
    assert counts == sorted(counts, reverse=True)


async def _histories(client: duro.Client, **filters: Any) -> list[tuple[Any, list[Any]]]:
    out = []
    for info in await client.list(limit=1000, **filters):
        out.append((info, await client.get_handle(info.workflow_id, info.run_id).history()))
    return out


async def _mix(engine: duro.Engine) -> None:
    _tries.clear()  # each stats.flaky key fails its first attempt, in every test using it
    handles = [await engine.start(ok, f"k{i}", id=f"ok-{i}") for i in range(6)]
    handles += [await engine.start(bad, i, id=f"bad-{i}") for i in range(3)]
    for h in handles:
        with contextlib.suppress(duro.WorkflowFailedError):
            await h.result(timeout=30)
    cancelled = await engine.start(wait, id="w-cancel")
    terminated = await engine.start(wait, id="w-term")
    await engine.start(wait, id="w-live")
    completed = await engine.start(wait, id="w-done")
    await completed.signal("go", True)
    assert await completed.result(timeout=30) is True
    await terminated.terminate("enough")
    await cancelled.cancel()

    async def closed() -> bool:
        return (await cancelled.describe()).status.value == "cancelled"

    await wait_until(closed, timeout=30)


def test_stats_match_the_histories(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            await _mix(engine)
            everything = await engine.stats()
            _check(everything, await _histories(engine))
            assert everything.since is None
            by_name = {w.workflow: w for w in everything.workflows}
            assert by_name["stats.bad"].failed == 3 and by_name["stats.ok"].completed == 6
            assert {(w.cancelled, w.terminated, w.completed, w.live)
                    for w in everything.workflows if w.workflow == "stats.wait"} == \
                {(1, 1, 1, 1)}
            steps = {s.step: s for s in everything.steps}
            assert (steps["stats.flaky"].retries, steps["stats.flaky"].completed) == (6, 6)
            assert (steps["stats.broken"].retries, steps["stats.broken"].failed) == (6, 3)

            only = await engine.stats(workflow="stats.bad", since=timedelta(hours=1))
            _check(only, await _histories(engine, name="stats.bad"))
            assert [w.workflow for w in only.workflows] == ["stats.bad"]

            # A window that starts between two runs: the newer ones only (the midpoint
            # of two creation times, clear of the read model's microsecond rounding).
            runs = await _histories(engine)
            times = sorted({info.created_at.timestamp() for info, _ in runs})
            cut = (times[5] + times[6]) / 2
            newer = [(info, events) for info, events in runs
                     if info.created_at.timestamp() > cut]
            assert 0 < len(newer) < len(runs)
            windowed = await engine.stats(since=cut)
            _check(windowed, newer)
            assert windowed.since == cut

            # A window that starts after every run: nothing, and nothing made up.
            later = datetime.now(UTC) + timedelta(hours=1)
            empty = await engine.stats(since=later)
            assert empty == Stats(since=later.timestamp(), workflows=(), steps=(), errors=())
            assert Stats.from_json(everything.to_json()) == everything

    run(main())


@pytest.mark.parametrize("bad", [
    {"since": timedelta(seconds=-1)}, {"since": datetime(2026, 1, 1)},
    {"since": math.nan}, {"since": "7d"}, {"workflow": ""}, {"workflow": 3},
])
def test_stats_refuses_bad_input(db_url: str, bad: dict[str, Any]) -> None:
    async def main() -> None:
        async with duro.Client(db_url) as client:
            with pytest.raises(duro.InvalidArgumentError):
                await client.stats(**bad)

    run(main())


def test_stats_keep_to_the_clients_namespace(db_url: str) -> None:
    async def main() -> None:
        async with duro.Client(db_url) as client:
            await client.with_namespace("team-a").start("stats.elsewhere", id="a-1")
            await client.with_namespace("team-b").start("stats.elsewhere", id="b-1")
            await client.with_namespace("team-b").start("stats.elsewhere", id="b-2")
            a = await client.with_namespace("team-a").stats()
            assert [(w.workflow, w.started, w.live) for w in a.workflows] == \
                [("stats.elsewhere", 1, 1)]
            b = await client.with_namespace("team-b").stats()
            assert [w.started for w in b.workflows] == [2]
            assert (await client.stats()).workflows == ()  # 'default' has none

    run(main())


def test_stats_across_hours_and_after_a_purge(any_db_url: str) -> None:
    """Runs created in three hours of a manual clock: a window starting inside the first
    hour sums the runs of its partial hour read raw and those of the whole hours after it
    (the rollup), on a read-only client (nothing brought into the rollup) as on the
    engine; a purge of the closed runs takes them out of the figures."""
    hour = 3600 * 500_000
    clock = duro.ManualClock(start=hour + 600.0)

    async def main() -> None:
        async with duro.Engine(any_db_url, clock=clock, poll_interval=0.02) as engine:
            async def settle(handles: list[Any]) -> None:
                async def closed() -> bool:
                    clock.advance(0.05)  # the retries' backoffs run on this clock
                    return all([(await h.describe()).closed_at is not None for h in handles])

                await wait_until(closed, timeout=30)

            _tries.clear()
            await settle([await engine.start(ok, f"h{i}", id=f"early-{i}") for i in range(2)])
            clock.advance(1800)  # the same hour, after the window's start
            await settle([await engine.start(bad, i, id=f"middle-{i}") for i in range(2)])
            clock.advance(7200)  # two hours on: a whole hour of the window
            await settle([await engine.start(ok, f"l{i}", id=f"late-{i}") for i in range(2)])
            await engine.start(wait, id="late-live")
            runs = await _histories(engine)
            since = hour + 900.0
            # A read-only client brings nothing into the rollup: it reads the runs
            # written since they were counted as they are (SQLite's pending runs,
            # PostgreSQL's deltas).
            sep = "&" if "?" in any_db_url else "?"
            async with duro.Client(f"{any_db_url}{sep}mode=ro") as reader:
                _check(await reader.stats(), runs)
                _check(await reader.stats(since=since), [
                    (i, e) for i, e in runs if i.created_at.timestamp() >= since])
            _check(await engine.stats(), runs)
            window = [(i, e) for i, e in runs if i.created_at.timestamp() >= since]
            assert {i.workflow_id for i, _ in window} == {
                "middle-0", "middle-1", "late-0", "late-1", "late-live"}
            _check(await engine.stats(since=since), window)
            _check(await engine.stats(since=float(hour + 3600)), [
                (i, e) for i, e in runs if i.workflow_id.startswith("late")])

            store: Any = engine.store
            assert await store.purge_finished(before=clock.now() + 60) == 6
            left = await _histories(engine)
            assert [i.workflow_id for i, _ in left] == ["late-live"]
            _check(await engine.stats(), left)
            _check(await engine.stats(since=since), left)

    run(main())
