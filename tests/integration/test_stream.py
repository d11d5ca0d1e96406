"""``duro.stream()`` inside steps and ``handle.stream()`` on both stores: chunks in
order from async and sync steps, complete when the step completes, a retried attempt's
chunks superseded (with a marker for live readers), readers from an offset and readers
that reconnect, bad input refused, the per-run cap and deletion with the run.
(``tests/acceptance/test_stream_kill.py``: the same through SIGKILL; HTTP:
``tests/acceptance/test_stream_http.py``.)"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import duro
from duro.worker._retention import RetentionPolicy, purge_once
from tests.conftest import run

FAILS: dict[str, int] = {}
GATE: dict[str, threading.Event] = {}


@pytest.fixture
def db_url(any_db_url: str) -> str:
    FAILS.clear()
    GATE.clear()
    return any_db_url


@duro.step(name="st.words")
async def words(n: int) -> int:
    for i in range(n):
        duro.stream(f"w{i}")
        if i % 7 == 0:
            await asyncio.sleep(0)  # let the worker write a batch meanwhile
    return n


@duro.step(name="st.sync_words")
def sync_words(n: int) -> int:
    for i in range(n):
        duro.stream({"i": i, "text": f"s{i}"})
    return n


@duro.step(name="st.flaky", retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01,
                                                    jitter=0))
async def flaky(key: str) -> str:
    attempt = duro.step_info().attempt
    for i in range(3):
        duro.stream(f"a{attempt}-{i}")
    if attempt <= FAILS.get(key, 0):
        raise ConnectionError(f"attempt {attempt} fails")
    return f"done at {attempt}"


@duro.step(name="st.gated")
def gated(key: str, n: int) -> int:
    for i in range(n):
        duro.stream(i)
        if i == n // 2:
            GATE[key].wait(10)  # the test reads the first half meanwhile
    return n


@duro.step(name="st.bad")
async def bad() -> str:
    try:
        duro.stream(object())
    except duro.SerializationError as exc:
        return f"refused: {type(exc).__name__}"
    return "accepted"


@duro.workflow(name="st.flow")
async def st_flow(n: int) -> list[int]:
    return [await words(n), await sync_words(n)]


@duro.workflow(name="st.retry")
async def st_retry(key: str) -> str:
    return await flaky(key)


@duro.workflow(name="st.gate")
async def st_gate(key: str, n: int) -> int:
    return await gated(key, n)


@duro.workflow(name="st.bad")
async def st_bad() -> str:
    return await bad()


async def _all(handle: duro.WorkflowHandle[Any], from_offset: int = 0) -> list[duro.StreamChunk]:
    return [c async for c in handle.stream(from_offset=from_offset)]


def test_chunks_in_order_from_async_and_sync_steps(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(st_flow, 300, id="st-order")
            live = asyncio.ensure_future(_all(handle))  # a reader from the start
            assert await handle.result(timeout=20) == [300, 300]
            chunks = await asyncio.wait_for(live, 20)
            assert [c.offset for c in chunks] == list(range(600))
            assert [c.data for c in chunks[:300]] == [f"w{i}" for i in range(300)]
            assert [c.data for c in chunks[300:]] == [{"i": i, "text": f"s{i}"}
                                                      for i in range(300)]
            assert {(c.step, c.op, c.kind, c.superseded) for c in chunks} == {
                ("st.words", 1, "chunk", False), ("st.sync_words", 2, "chunk", False)}
            # The history keeps the results only.
            kinds = [e.kind for e in await handle.history()]
            assert kinds == ["run_started", "step_completed", "step_completed",
                             "run_completed"]
            # Read again after the end, from an offset: the same items.
            assert await _all(handle, 550) == chunks[550:]

    run(main())


def test_the_stream_is_complete_when_the_step_completes(db_url: str) -> None:
    @duro.workflow(name="st.check_complete")
    async def check_complete(n: int) -> int:
        await words(n)
        return n

    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(check_complete, 1000, id="st-complete")
            # As soon as the step's outcome is in the history, all of its chunks are in
            # the stream (the store is read directly, with no waiting).
            while not any(e.kind == "step_completed" for e in await handle.history()):
                await asyncio.sleep(0.001)
            rows = await engine.store.read_stream((await handle.describe()).run_id, 0, 5000)
            assert [r.data for r in rows] == [f'"w{i}"' for i in range(1000)]
            await handle.result(timeout=10)

    run(main())


def test_a_retried_attempts_chunks_are_superseded(db_url: str) -> None:
    async def main() -> None:
        FAILS["k"] = 2
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(st_retry, "k", id="st-retry")
            assert await handle.result(timeout=20) == "done at 3"
            items = await _all(handle)
            got = [(c.kind, c.attempt, c.data, c.superseded) for c in items]
            assert got == [
                ("chunk", 1, "a1-0", True), ("chunk", 1, "a1-1", True),
                ("chunk", 1, "a1-2", True), ("superseded", 2, None, False),
                ("chunk", 2, "a2-0", True), ("chunk", 2, "a2-1", True),
                ("chunk", 2, "a2-2", True), ("superseded", 3, None, False),
                ("chunk", 3, "a3-0", False), ("chunk", 3, "a3-1", False),
                ("chunk", 3, "a3-2", False)]
            assert [c.offset for c in items] == list(range(11))
            assert len({c.execution for c in items}) == 3

    run(main())


def test_a_reader_that_reconnects_gets_no_gap_and_no_duplicate(db_url: str) -> None:
    async def main() -> None:
        GATE["g"] = threading.Event()
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(st_gate, "g", 40, id="st-gate")
            first: list[duro.StreamChunk] = []
            async for chunk in handle.stream():  # live, while the step runs
                first.append(chunk)
                if chunk.data == 20:
                    break  # the reader goes away mid-stream
            GATE["g"].set()
            rest = await _all(engine.get_handle("st-gate"), first[-1].offset + 1)
            assert [c.data for c in first + rest] == list(range(40))
            assert [c.offset for c in first + rest] == list(range(40))
            assert await handle.result(timeout=10) == 40

    run(main())


def test_bad_input_is_refused(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(st_bad, id="st-bad")
            assert await handle.result(timeout=10) == "refused: SerializationError"
            assert await _all(handle) == []
            with pytest.raises(duro.InvalidArgumentError):
                await anext(aiter(handle.stream(from_offset=-1)))
            with pytest.raises(duro.InvalidArgumentError):
                await anext(aiter(handle.stream(from_offset="3")))  # type: ignore[arg-type]
            with pytest.raises(duro.RunNotFoundError):
                await anext(aiter(engine.get_handle("st-none").stream()))

    run(main())


def test_outside_a_step_it_checks_the_chunk_and_does_nothing() -> None:
    duro.stream("nobody listens")  # no error, nothing stored
    with pytest.raises(duro.SerializationError):
        duro.stream(float("nan"))
    with pytest.raises(duro.InvalidArgumentError):
        duro.stream("x" * (1 << 20))


def test_the_cap_per_run_and_deletion_with_the_run(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, stream_limit=50) as engine:
            handle = await engine.start(st_flow, 30, id="st-cap")
            assert await handle.result(timeout=20) == [30, 30]
            items = await _all(handle)
            assert [c.kind for c in items] == ["chunk"] * 50 + ["truncated"]
            assert [c.data for c in items[30:50]] == [{"i": i, "text": f"s{i}"}
                                                      for i in range(20)]
            run_id = (await handle.describe()).run_id
            deleted = await purge_once(engine.store, RetentionPolicy(keep=0),  # type: ignore[arg-type]
                                       engine.clock.now() + 1)
            assert deleted >= 1
            assert await engine.store.read_stream(run_id, 0) == []
        with pytest.raises(duro.InvalidArgumentError):
            duro.Engine(db_url, stream_limit=0)

    run(main())
