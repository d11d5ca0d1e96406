"""LLM usage and cost (issue 17, item 1): ``duro.record_usage`` inside steps is stored
with each attempt's outcome (failed attempts too, steps run by a queue's worker too),
summed per run by ``handle.usage()`` and per workflow and step by ``duro stats``, on
both stores. Every figure is checked against one computed here from the raw history."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

import duro
from tests.conftest import run

duro.set_model_prices({"test-small": duro.ModelPrice(input_per_mtok=1.0,
                                                     output_per_mtok=4.0)})

_tries: Counter[str] = Counter()


@duro.step(name="usage.ask")
async def ask(question: str) -> str:
    duro.record_usage(model="test-small", input_tokens=100, output_tokens=20)
    duro.record_usage(model="test-big", input_tokens=1000, output_tokens=50, cost=0.125,
                      provider="local", request_id=question)
    return question.upper()


@duro.step(name="usage.unpriced")
def unpriced(n: int) -> int:  # a sync step: record_usage from the executor's thread
    duro.record_usage(model="nobody-prices-this", input_tokens=n, output_tokens=n)
    return n


@duro.step(name="usage.flaky", retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01))
async def flaky(key: str) -> str:
    _tries[key] += 1
    duro.record_usage(model="test-small", input_tokens=10, output_tokens=10)
    if _tries[key] == 1:
        raise ConnectionError("the model server hung up")
    return key


@duro.step(name="usage.routed", queue="llm")
async def routed(n: int) -> int:
    duro.record_usage(model="test-small", input_tokens=n, output_tokens=0)
    return n


@duro.step(name="usage.silent")
async def silent() -> int:
    return 7


@duro.workflow(name="usage.agent")
async def agent(key: str) -> list[Any]:
    return [await ask(key), await unpriced(3), await flaky(key), await silent()]


@duro.workflow(name="usage.queued")
async def queued() -> int:
    return await routed(500)


def _from_history(events: list[duro.Event]) -> dict[str, Any]:
    """Totals computed from the raw events' meta, not through duro's summing."""
    calls = tokens_in = tokens_out = unpriced_calls = 0
    cost = 0.0
    for e in events:
        for u in e.meta.get("usage", []):
            calls += 1
            tokens_in += u["input_tokens"]
            tokens_out += u["output_tokens"]
            if u["cost"] is None:
                unpriced_calls += 1
            else:
                cost += u["cost"]
    return {"calls": calls, "in": tokens_in, "out": tokens_out, "cost": cost,
            "unpriced": unpriced_calls}


def test_usage_is_stored_with_each_outcome_and_summed(any_db_url: str) -> None:
    _tries.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(agent, "q1", id="agent-1")
            assert await handle.result(timeout=30) == ["Q1", 3, "q1", 7]
            events = await handle.history()
            by_kind = {(e.kind, e.name): e for e in events}
            # Stored in the outcome's meta: the completed step's, and the failed
            # attempt's (its tokens were spent too).
            asked = by_kind[("step_completed", "usage.ask")].meta["usage"]
            assert asked == [
                {"model": "test-small", "input_tokens": 100, "output_tokens": 20,
                 "cost": pytest.approx((100 * 1.0 + 20 * 4.0) / 1e6)},
                {"model": "test-big", "input_tokens": 1000, "output_tokens": 50,
                 "cost": 0.125, "extra": {"provider": "local", "request_id": "q1"}}]
            retried = by_kind[("step_retrying", "usage.flaky")].meta["usage"]
            assert [u["input_tokens"] for u in retried] == [10]
            assert "usage" not in by_kind[("step_completed", "usage.silent")].meta

            usage = await handle.usage()
            want = _from_history(events)
            assert want["calls"] == 5  # ask 2, unpriced 1, flaky 2 attempts
            assert (usage.total.calls, usage.total.input_tokens, usage.total.output_tokens,
                    usage.total.unpriced_calls) == (want["calls"], want["in"], want["out"],
                                                    want["unpriced"])
            assert usage.cost == pytest.approx(want["cost"])
            assert usage.total_tokens == want["in"] + want["out"]
            assert usage.by_model["nobody-prices-this"].unpriced_calls == 1
            assert usage.by_model["test-small"].calls == 3
            assert usage.by_step["usage.flaky"].calls == 2
            assert "usage.silent" not in usage.by_step
            assert duro.RunUsage.from_json(usage.to_json()) == usage

    run(main())


def test_usage_of_a_step_run_by_a_queue_worker(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, queues=["default", "llm"],
                               poll_interval=0.02) as engine:
            handle = await engine.start(queued, id="queued-1")
            assert await handle.result(timeout=30) == 500
            done = [e for e in await handle.history() if e.kind == "step_completed"]
            assert done[0].meta["queue"] == "llm"
            assert done[0].meta["usage"][0]["input_tokens"] == 500
            assert (await handle.usage()).total.input_tokens == 500

    run(main())


def test_stats_sum_usage_per_step_and_workflow(any_db_url: str) -> None:
    _tries.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handles = [await engine.start(agent, f"s{i}", id=f"s-{i}") for i in range(3)]
            await asyncio.gather(*(h.result(timeout=30) for h in handles))
            histories = [await h.history() for h in handles]
            stats = await engine.stats()
            steps = {s.step: s for s in stats.steps}
            for name in ("usage.ask", "usage.unpriced", "usage.flaky"):
                want = _from_history([e for events in histories for e in events
                                      if e.name == name])
                got = steps[name].usage
                assert (got.calls, got.input_tokens, got.output_tokens,
                        got.unpriced_calls) == (want["calls"], want["in"], want["out"],
                                                want["unpriced"])
                assert got.cost == pytest.approx(want["cost"])
            assert steps["usage.silent"].usage.calls == 0
            whole = _from_history([e for events in histories for e in events])
            (workflow,) = [w for w in stats.workflows if w.workflow == "usage.agent"]
            assert workflow.usage.calls == whole["calls"]
            assert workflow.usage.cost == pytest.approx(whole["cost"])
            assert duro.Stats.from_json(stats.to_json()) == stats

    run(main())


def test_record_usage_refuses_bad_input_and_stores_nothing(any_db_url: str) -> None:
    @duro.step(name="usage.bad", retry=duro.RetryPolicy(max_attempts=1))
    async def bad(kind: str) -> str:
        if kind == "tokens":
            duro.record_usage(model="m", input_tokens=-1)
        elif kind == "model":
            duro.record_usage(model="")
        elif kind == "cost":
            duro.record_usage(model="m", cost=float("nan"))
        else:
            duro.record_usage(model="m", extra=object())
        return "unreachable"

    @duro.workflow(name="usage.bad_wf")
    async def bad_wf(kind: str) -> str:
        return await bad(kind)

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            for kind in ("tokens", "model", "cost", "extra"):
                handle = await engine.start(bad_wf, kind, id=f"bad-{kind}")
                with pytest.raises(duro.WorkflowFailedError) as failed:
                    await handle.result(timeout=30)
                assert "InvalidArgumentError" in str(failed.value.__cause__ or failed.value)
                assert (await handle.usage()).total.calls == 0

    run(main())


def test_duro_stats_prints_the_usage_table(tmp_path: Any) -> None:
    _tries.clear()
    url = f"sqlite:///{tmp_path}/duro.db"

    async def main() -> None:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            await (await engine.start(agent, "cli", id="cli-1")).result(timeout=30)

    run(main())
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "duro", "--db", url, "stats"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = [line.split() for line in out.splitlines()]
    assert ["WORKFLOW", "STEP", "LLM", "CALLS", "TOKENS", "IN", "TOKENS", "OUT", "COST",
            "$"] in lines
    assert ["usage.agent", "usage.unpriced", "1", "3", "3", "0.0000", "(+1",
            "unpriced)"] in lines


@duro.step(name="usage.cached", cache=duro.Cache())
async def cached_llm(prompt: str) -> str:
    duro.record_usage(model="test-small", input_tokens=len(prompt), output_tokens=1)
    return prompt[::-1]


@duro.workflow(name="usage.cached_wf")
async def cached_wf(prompt: str) -> str:
    return await cached_llm(prompt)


def test_a_cache_miss_keeps_its_usage_and_a_hit_spends_nothing(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            first = await engine.start(cached_wf, "hello", id="cached-1")
            assert await first.result(timeout=30) == "olleh"
            second = await engine.start(cached_wf, "hello", id="cached-2")
            assert await second.result(timeout=30) == "olleh"
            assert (await first.usage()).total.input_tokens == 5
            hit = next(e for e in await second.history() if e.kind == "step_completed")
            assert hit.meta["cache_hit"] is True and "usage" not in hit.meta
            assert (await second.usage()).total.calls == 0

    run(main())
