"""Context variables: a run sees the same ones wherever it runs. Its steps run in the
worker's context (as it was when the worker started), its workflow code in an empty one;
never in the context of the caller that started it, which a run claimed by another
worker, or recovered after a crash, could not see."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

import duro
from tests.conftest import run

where: contextvars.ContextVar[str | None] = contextvars.ContextVar("where", default=None)
SEEN: list[tuple[str, str | None]] = []


@duro.step
async def async_probe(label: str) -> str | None:
    SEEN.append((f"{label}/async step", where.get()))
    where.set("set by a step")  # must not reach the next step
    return where.get()


@duro.step
def sync_probe(label: str) -> str | None:
    SEEN.append((f"{label}/sync step", where.get()))
    return where.get()


@duro.workflow(name="ctx_probe")
async def probe_wf(label: str) -> str:
    SEEN.append((f"{label}/workflow", where.get()))
    await async_probe(label)
    await sync_probe(label)
    await async_probe(label)
    return label


@pytest.fixture
def db_url(any_db_url: str) -> str:
    SEEN.clear()
    return any_db_url


def test_a_run_never_sees_its_starters_context_variables(db_url: str) -> None:
    async def main() -> None:
        where.set("worker")  # what the process had when its worker started
        async with duro.Engine(db_url) as engine:
            # A request handler starting a run: its context must not reach the run
            # (adopted by this process's worker at once, without a claim).
            token = where.set("request-42")
            try:
                local = await engine.start(probe_wf, "local")
            finally:
                where.reset(token)
            assert await local.result(timeout=30) == "local"
            # The same workflow started by a client without a worker: claimed.
            async with duro.Client(db_url) as client:
                where.set("another request")
                claimed = await client.start(probe_wf, "claimed")
                assert await claimed.result(timeout=30) == "claimed"

    run(asyncio.wait_for(main(), 60))
    seen = dict(SEEN)
    for label in ("local", "claimed"):
        assert seen[f"{label}/workflow"] is None
        assert seen[f"{label}/sync step"] == "worker"
    # Both attempts of async_probe saw the worker's value: the first's set() stayed its own.
    assert [v for k, v in SEEN if k.endswith("/async step")] == ["worker"] * 4
