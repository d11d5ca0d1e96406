"""A workflow that logs through ``duro.logger`` (tests/integration/test_logs.py and the
CLI's --log-format json test)."""

from __future__ import annotations

import duro


@duro.step(name="log_app.work")
async def work(n: int) -> int:
    duro.logger.info("working on %d", n)
    return n * 2


@duro.workflow(name="log_app.chatty")
async def chatty(n: int) -> int:
    duro.logger.info("started with %d", n)
    doubled = await work(n)
    duro.logger.info("worked: %d", doubled)
    return doubled


@duro.workflow(name="log_app.waits")
async def waits(n: int) -> int:
    duro.logger.info("before the signal")
    doubled = await work(n)
    go = await duro.wait_for_signal("go", type=int)
    duro.logger.warning("after the signal: %d", go)
    return doubled + go


@duro.workflow(name="log_app.fails")
async def fails(reason: str) -> None:
    duro.logger.error("giving up: %s", reason)
    raise ValueError(reason)
