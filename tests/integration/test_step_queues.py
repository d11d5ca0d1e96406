"""Steps routed to a queue run only on workers serving it, with the same history (and so
the same replay) as a local step."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

import duro
from duro.step._step import _registry
from duro.testing import replay
from tests.conftest import run

SEEN: dict[str, list[int]] = {"gpu": [], "local": []}
FAILS = {"left": 0}


@duro.step(name="sq.render", queue="gpu",
           retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=0))
def render(frame: int) -> str:
    SEEN["gpu"].append(frame)
    if FAILS["left"] > 0:
        FAILS["left"] -= 1
        raise ConnectionError("gpu busy")
    return f"frame-{frame}@{duro.step_info().attempt}"


@duro.step(name="sq.prepare")
def prepare(n: int) -> list[int]:
    SEEN["local"].append(n)
    return list(range(n))


@duro.workflow(name="sq.movie")
async def movie(n: int) -> list[str]:
    frames = await prepare(n)
    return list(await asyncio.gather(*(render(f) for f in frames)))


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Store-agnostic tests: each runs on SQLite and on PostgreSQL."""
    return any_db_url


def _task_owners(url: str) -> set[str]:
    """The owners recorded in the ``tasks`` table (a direct read)."""
    sql = "SELECT DISTINCT owner FROM tasks"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return {r[0] for r in conn.execute(sql)}
    from urllib.parse import parse_qs, urlparse

    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    with psycopg.connect(url.split("?")[0]) as pg:
        return {r[0] for r in pg.execute(sql.replace("FROM tasks", f'FROM "{schema}".tasks'))}


def test_a_routed_step_runs_only_on_a_worker_serving_its_queue(db_url: str) -> None:
    url = db_url
    SEEN["gpu"].clear()
    FAILS["left"] = 0

    async def main() -> None:
        async with duro.Engine(url, queues=["default"], poll_interval=0.02) as cpu:
            handle = await cpu.start(movie, 3, id="movie")
            await asyncio.sleep(0.3)
            assert SEEN["gpu"] == [], "no worker serves 'gpu' yet"
            assert await handle.status() == duro.RunStatus.SUSPENDED  # waiting holds nothing
            async with duro.Engine(url, queues=["gpu"], poll_interval=0.02) as gpu:
                assert await handle.result(timeout=10) == [
                    "frame-0@1", "frame-1@1", "frame-2@1"]
                assert gpu.worker is not None and cpu.worker is not None
                gpu_id = gpu.worker.worker_id
                assert await cpu.get_handle("movie").status() == duro.RunStatus.COMPLETED
        assert sorted(SEEN["gpu"]) == [0, 1, 2]
        assert _task_owners(url) == set() or _task_owners(url) == {gpu_id}
        history = await _history(url, "movie")
        completed = [e for e in history if e.kind == "step_completed"]
        assert [e.meta.get("queue") for e in completed if e.name == "sq.render"] == ["gpu"] * 3

    run(main())


def test_routed_step_failures_follow_the_retry_policy(db_url: str) -> None:
    url = db_url
    SEEN["gpu"].clear()
    FAILS["left"] = 2

    async def main() -> None:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            handle = await engine.start(movie, 1)
            assert await handle.result(timeout=10) == ["frame-0@3"]
            kinds = [e.kind for e in await handle.history() if e.name == "sq.render"]
            assert kinds == ["step_retrying", "step_retrying", "step_completed"]

    run(main())


def _render_locally(frame: int) -> str:
    return f"frame-{frame}@1"


# The same step name without a queue (a local step), built without replacing the routed
# step in the registry that workers use to find a task's function.
render_locally = duro.Step(_render_locally, name="sq.render")
_registry["sq.render"] = render


async def movie_local_code(n: int) -> list[str]:
    frames = await prepare(n)
    return list(await asyncio.gather(*(render_locally(f) for f in frames)))


def test_routing_does_not_change_replay(db_url: str) -> None:
    url = db_url
    FAILS["left"] = 0

    async def main() -> list[duro.Event]:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            handle = await engine.start(movie, 2, id="routed")
            await handle.result(timeout=10)
            return await handle.history()

    events = run(main())
    local = duro.Workflow(movie_local_code, name="sq.movie_local")
    result = replay(local, events, workflow_name="sq.movie")  # its steps local now
    assert result.status == "completed" and result.result == ["frame-0@1", "frame-1@1"]


def test_routed_step_arguments_must_be_json(db_url: str) -> None:
    @duro.workflow(name="sq.bad_args")
    async def bad_args() -> str:
        return await render(object())  # type: ignore[arg-type]

    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(bad_args)
            with pytest.raises(duro.WorkflowFailedError) as info:
                await handle.result(timeout=10)
            assert info.value.cause.type == "duro.errors.SerializationError"

    run(main())


async def _history(url: str, workflow_id: str) -> list[duro.Event]:
    async with duro.Engine(url, worker=False) as engine:
        return await engine.get_handle(workflow_id).history()
