"""Context variables: a run sees the same ones wherever it runs — the worker's, as they
were when it started (``decimal``'s settings, a logging context set up at start-up) —
its workflow code, handlers, conditions and ``finally`` blocks each run's own copy, its
steps a copy each. Never those of the code that happened to start, signal, query or
terminate it, or of a step whose outcome woke it: a run claimed by another worker, or
recovered after a crash, could not see those."""

from __future__ import annotations

import asyncio
import contextvars
import decimal

import pytest

import duro
from tests.conftest import run

where: contextvars.ContextVar[str | None] = contextvars.ContextVar("where", default=None)
SEEN: list[tuple[str, str | None]] = []


def saw(label: str) -> None:
    SEEN.append((label, where.get()))


@duro.step
async def async_probe(label: str) -> str:
    saw(f"{label}/async step")
    where.set("set by a step")  # must not reach the next step, nor the workflow
    return str(decimal.Decimal(2) / 3)


@duro.step
def sync_probe(label: str) -> None:
    saw(f"{label}/sync step")


@duro.workflow(name="ctx_probe")
async def probe_wf(label: str) -> str:
    state = {"go": False}

    def on_go() -> None:
        saw(f"{label}/signal handler")
        state["go"] = True

    def ready() -> bool:
        saw(f"{label}/condition")
        return state["go"]

    duro.on_signal("go", on_go)
    duro.on_query("where", lambda: where.get())
    saw(f"{label}/workflow")
    first = await async_probe(label)
    await sync_probe(label)
    await async_probe(label)
    await duro.wait_condition(ready)
    try:
        await duro.wait_for_signal("never", timeout=3600)
    finally:
        saw(f"{label}/finally")
    return f"{first} {decimal.Decimal(2) / 3}"


@pytest.fixture
def db_url(any_db_url: str) -> str:
    SEEN.clear()
    return any_db_url


def test_a_run_sees_its_workers_context_not_its_callers(db_url: str) -> None:
    async def main() -> None:
        where.set("worker")  # what the process had when its worker started
        decimal.getcontext().prec = 6
        try:
            async with duro.Engine(db_url) as engine, duro.Client(db_url) as client:
                async def drive(label: str, via: duro.Client) -> None:
                    # Every call from a "request" of its own: none of it may reach the run.
                    token = where.set(f"request:{label}")
                    try:
                        handle = await via.start(probe_wf, label, id=f"ctx-{label}")
                        await asyncio.sleep(0)
                        for _ in range(300):
                            if any(k == f"{label}/condition" for k, _ in SEEN):
                                break
                            await asyncio.sleep(0.02)
                        assert await handle.query("where") == "worker"
                        await handle.signal("go")
                        for _ in range(300):
                            if any(k == f"{label}/signal handler" for k, _ in SEEN):
                                break
                            await asyncio.sleep(0.02)
                        await engine.get_handle(f"ctx-{label}").terminate("enough")
                        assert await engine.query(f"ctx-{label}", "where") == "worker"
                    finally:
                        where.reset(token)

                await drive("adopted", engine)  # adopted by this process's worker at once
                await drive("claimed", client)  # a client without a worker: claimed
        finally:
            decimal.getcontext().prec = 28

    run(asyncio.wait_for(main(), 60))
    for label in ("adopted", "claimed"):
        mine = [(k.split("/", 1)[1], v) for k, v in SEEN if k.startswith(f"{label}/")]
        kinds = {k for k, _ in mine}
        assert kinds == {"workflow", "async step", "sync step", "condition",
                         "signal handler", "finally"}, mine
        assert all(v == "worker" for _, v in mine), mine


@duro.workflow(name="ctx_decimal")
async def decimal_wf() -> str:
    return str(decimal.Decimal(2) / 3)


def test_workflow_code_keeps_the_processs_decimal_settings(db_url: str) -> None:
    async def main() -> str:
        decimal.getcontext().prec = 6
        try:
            async with duro.Engine(db_url) as engine:
                return str(await (await engine.start(decimal_wf)).result(timeout=30))
        finally:
            decimal.getcontext().prec = 28

    assert run(main()) == "0.666667"
