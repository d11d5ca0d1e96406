"""Metrics (issue 18, item 2): the Prometheus text of ``duro.metrics.Metrics`` parses with
``prometheus_client``'s parser and its counters match what the test did, on both stores;
a worker taking a run over counts only what it commits (a replay commits nothing); the
same instruments through OpenTelemetry metrics."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

import duro
from duro.metrics import INSTRUMENTS, Metrics, OtelRecorder
from tests.conftest import run, wait_for_event, wait_until

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

APPS = Path(__file__).parent.parent / "acceptance" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import metrics_app  # noqa: E402


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def _scrape(metrics: Metrics, engine: duro.Engine, name: str, want: float,
                  **labels: str) -> bytes:
    """A scrape once ``name`` reaches ``want``: a run's waiter may wake as its last
    write commits, a moment before the worker's notification of it (bounded wait)."""
    for _ in range(250):
        text = await metrics.exposition(engine)
        if value(samples(text), name, **labels) >= want:
            return text
        await asyncio.sleep(0.02)
    return text


def test_counters_match_what_the_runs_did(any_db_url: str) -> None:
    metrics_app.TRIES.clear()
    metrics = Metrics()

    async def main() -> bytes:
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[metrics]) as engine:
            handles = [await engine.start(metrics_app.busy, f"k{i}", id=f"busy-{i}")
                       for i in range(3)]
            for h in handles:
                await wait_for_event(h, "timer_fired")
                await h.signal("go", 5)
            assert [await h.result(timeout=30) for h in handles] == [6, 6, 6]
            return await _scrape(metrics, engine, "duro_runs_closed_total", 3,
                                 workflow="metrics_app.busy", status="completed")

    text = run(main())
    found = samples(text)
    families = {f.name for f in text_string_to_metric_families(text.decode())
                if not f.name.endswith("_created")}  # prometheus_client's creation times
    assert families == set(INSTRUMENTS)  # every instrument, exposed (counters: _total)
    busy = {"workflow": "metrics_app.busy"}
    assert value(found, "duro_runs_started_total", **busy) == 3
    assert value(found, "duro_runs_started_total", workflow="metrics_app.kid") == 3
    assert value(found, "duro_runs_closed_total", status="completed", **busy) == 3
    assert value(found, "duro_runs_closed_total", status="completed",
                 workflow="metrics_app.kid") == 3
    assert value(found, "duro_client_calls_total", call="start") == 3
    assert value(found, "duro_client_calls_total", call="signal") == 3
    flaky = {**busy, "step": "metrics_app.flaky"}
    assert value(found, "duro_step_attempts_total", outcome="retrying", **flaky) == 3
    assert value(found, "duro_step_attempts_total", outcome="completed", **flaky) == 3
    assert value(found, "duro_step_duration_seconds_count", **flaky) == 6
    assert value(found, "duro_step_attempts_total", outcome="completed",
                 workflow="metrics_app.kid", step="metrics_app.quick") == 3
    assert value(found, "duro_timer_lag_seconds_count", **busy) == 3
    assert value(found, "duro_signals_received_total", **busy) == 3
    assert value(found, "duro_llm_tokens_total", model="m-1", direction="in", **flaky) == 60
    assert value(found, "duro_llm_tokens_total", model="m-1", direction="out", **flaky) == 30
    assert value(found, "duro_llm_cost_usd_total", model="m-1", **flaky) == 3.0
    assert value(found, "duro_store_commits") > 0
    assert value(found, "duro_store_commit_operations") >= value(found, "duro_store_commits")
    assert value(found, "duro_worker_held_runs") == 0


def test_a_worker_taking_a_run_over_counts_only_what_it_commits(any_db_url: str) -> None:
    metrics_app.TRIES.clear()
    first_metrics, second_metrics = Metrics(), Metrics()

    async def main() -> tuple[bytes, bytes]:
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[first_metrics]) as first:
            handle = await first.start(metrics_app.busy, "over", id="over-1")
            await wait_for_event(handle, "timer_fired")
            one = await first_metrics.exposition(first)
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[second_metrics]) as second:
            await second.get_handle("over-1").signal("go", 1)
            assert await second.get_handle("over-1").result(timeout=30) == 2
            two = await _scrape(second_metrics, second, "duro_runs_closed_total", 1,
                                workflow="metrics_app.busy", status="completed")
        return one, two

    one, two = (samples(t) for t in run(main()))
    flaky = {"workflow": "metrics_app.busy", "step": "metrics_app.flaky"}
    assert value(one, "duro_step_attempts_total", outcome="completed", **flaky) == 1
    # The second worker replayed the flaky step's attempts and the timer: not again.
    assert value(two, "duro_step_attempts_total", outcome="completed", **flaky) == 0
    assert value(two, "duro_step_attempts_total", outcome="retrying", **flaky) == 0
    assert value(two, "duro_timer_lag_seconds_count", workflow="metrics_app.busy") == 0
    assert value(two, "duro_signals_received_total", workflow="metrics_app.busy") == 1
    assert value(two, "duro_runs_closed_total", workflow="metrics_app.busy",
                 status="completed") == 1


def test_the_same_instruments_through_opentelemetry(any_db_url: str) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    metrics_app.TRIES.clear()
    reader = InMemoryMetricReader()
    metrics = Metrics(OtelRecorder(MeterProvider(metric_readers=[reader])))

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[metrics]) as engine:
            handle = await engine.start(metrics_app.busy, "otel", id="otel-1")
            await wait_for_event(handle, "timer_fired")
            await handle.signal("go", 2)
            assert await handle.result(timeout=30) == 3
            for _ in range(250):  # bounded: see _scrape
                closed = [p for rm in reader.get_metrics_data().resource_metrics
                          for sm in rm.scope_metrics for m in sm.metrics
                          if m.name == "duro_runs_closed" for p in m.data.data_points]
                if sum(p.value for p in closed) >= 2:
                    break
                await asyncio.sleep(0.02)
            await metrics.refresh(engine)
            with pytest.raises(duro.InvalidArgumentError):
                await metrics.exposition(engine)

    run(main())
    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points[m.name] = list(m.data.data_points)
    attempts = {(p.attributes["step"], p.attributes["outcome"]): p.value
                for p in points["duro_step_attempts"]}
    assert attempts[("metrics_app.flaky", "retrying")] == 1
    assert attempts[("metrics_app.flaky", "completed")] == 1
    (duration,) = [p for p in points["duro_step_duration_seconds"]
                   if p.attributes["step"] == "metrics_app.flaky"]
    assert duration.count == 2
    assert sum(p.value for p in points["duro_runs_closed"]) == 2  # the run and its child
    assert points["duro_store_commits"][0].value > 0


def test_schedule_lag_and_missed_ticks(any_db_url: str) -> None:
    """A tick fired 30 s late (the clock moved past it while the worker looked) is a
    30 s lag; ticks skipped as older than the catch-up window are counted as missed."""
    clock = duro.ManualClock(start=1_800_000_000.0)  # a whole minute: ticks at :00
    metrics = Metrics()

    async def fired(engine: duro.Engine, schedule: str, count: int) -> None:
        async def enough() -> bool:
            return (await engine.schedules.get(schedule)).fired >= count
        await wait_until(enough, timeout=20)

    async def main() -> bytes:
        async with duro.Engine(any_db_url, clock=clock, poll_interval=0.02,
                               interceptors=[metrics]) as engine:
            await engine.schedules.create("lagging", metrics_app.tick, args=[1], every=60,
                                          overlap="allow_all")
            await asyncio.sleep(0.1)  # the scheduler looks once before the jump
            clock.advance(90)  # the tick at +60 s is acted on at +90 s: 30 s late
            await fired(engine, "lagging", 1)
        clock.advance(10 * 60)  # the worker is down for ten minutes
        async with duro.Engine(any_db_url, clock=clock, poll_interval=0.02,
                               interceptors=[metrics]) as engine:
            await fired(engine, "lagging", 2)
            info = await engine.schedules.get("lagging")
            return await metrics.exposition(engine) + f"#{info.missed}".encode()

    text, _, missed = run(main()).rpartition(b"#")
    found = samples(text)
    labels = {"schedule": "lagging"}
    # Both firings 30 s late: +60 at +90, then (the ticks of +120..+600 missed) +660
    # at +690.
    assert value(found, "duro_schedule_lag_seconds_count", **labels) == 2
    assert value(found, "duro_schedule_lag_seconds_sum", **labels) == 60.0
    assert value(found, "duro_schedule_lag_seconds_bucket", le="10.0", **labels) == 0
    assert value(found, "duro_schedule_lag_seconds_bucket", le="30.0", **labels) == 2
    assert value(found, "duro_schedule_ticks_missed_total", **labels) == int(missed) == 9
