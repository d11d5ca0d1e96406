"""Workflows for the metrics tests (tests/integration/test_metrics.py and the serve and
worker scrapes): a retried step, a timer, a signal, a child and model usage."""

from __future__ import annotations

from collections import Counter

import duro

TRIES: Counter[str] = Counter()


@duro.step(name="metrics_app.flaky",
           retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01))
async def flaky(key: str) -> str:
    TRIES[key] += 1
    duro.record_usage(model="m-1", input_tokens=10, output_tokens=5, cost=0.5)
    if TRIES[key] == 1:
        raise ConnectionError("first attempt fails")
    return key


@duro.step(name="metrics_app.quick")
async def quick(n: int) -> int:
    return n + 1


@duro.workflow(name="metrics_app.kid")
async def kid(n: int) -> int:
    return await quick(n)


@duro.workflow(name="metrics_app.busy")
async def busy(key: str) -> int:
    await flaky(key)
    await duro.sleep(0.01)
    got = await duro.wait_for_signal("go", type=int)
    return await duro.execute_child(kid, got, id=f"{key}-kid")


@duro.workflow(name="metrics_app.tick")
async def tick(n: int) -> int:
    return n
