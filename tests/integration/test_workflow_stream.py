"""``duro.stream()`` from workflow code and ``duro.close_stream()``, on both stores: the
values reach ``handle.stream()`` in order with the steps' chunks, each exactly once
across replays (a restarted engine replays the run: nothing is written again), and a
closed stream ends its readers while the run goes on; a write after the close, or from a
query, is refused; a fork's stream has the values its copied history has."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import duro
from duro.errors import QueryError
from tests.conftest import run


@duro.step(name="ws.chunks")
async def chunks(i: int) -> int:
    duro.stream(f"step{i}")
    return i


@duro.workflow(name="ws.producer")
async def producer(n: int) -> list[str]:
    for i in range(n):
        duro.stream({"progress": i})  # the workflow's own value, recorded with its write
        await chunks(i)
    duro.stream("waiting")
    await duro.wait_for_signal("go")
    duro.stream("went")
    duro.close_stream()
    duro.close_stream()  # again: nothing
    refused = []
    try:
        duro.stream("late")
    except RuntimeError as exc:
        refused.append(str(exc))
    duro.on_query("write", lambda: duro.stream("from a query"))
    await duro.wait_for_signal("finish")
    return refused


def _values(items: list[duro.StreamChunk]) -> list[tuple[str, int, Any]]:
    return [(c.kind, c.op, c.data) for c in items]


async def _read(handle: duro.WorkflowHandle[Any], until: Any = None) -> list[duro.StreamChunk]:
    got = []
    async for item in handle.stream():
        got.append(item)
        if until is not None and item.data == until:
            break
    return got


def test_workflow_values_reach_the_stream_once_and_close_it(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, workflows=[producer]) as first:
            handle = await first.start(producer, 3, id="ws-1")
            seen = await asyncio.wait_for(_read(handle, until="waiting"), 20)
        # A new engine: the run is replayed from its history (its duro.stream() calls
        # run again) and must write nothing again.
        async with duro.Engine(any_db_url, workflows=[producer]) as second:
            handle = second.get_handle("ws-1")
            await handle.signal("go")
            everything = await asyncio.wait_for(_read(handle), 20)  # ends at "closed"
            assert not (await handle.describe()).status.is_terminal  # the run goes on
            with pytest.raises(QueryError, match="must not write to the run's stream"):
                await handle.query("write")
            await handle.signal("finish")
            refused = await handle.result(timeout=20)
            after = await asyncio.wait_for(_read(handle), 20)
            # A fork copies the workflow's own values (its history has them), in order;
            # its replay writes none again.
            fork = await second.fork("ws-1", new_id="ws-1-fork")
            assert len(await fork.result(timeout=20)) == 1
            forked = await asyncio.wait_for(_read(fork), 20)
        assert len(refused) == 1 and "closed it" in refused[0]
        # The workflow's values in its order, each once, then the close; the steps' chunks
        # in theirs (a value written while a step runs is committed beside its chunks:
        # between the two, commit order).
        assert [d for k, op, d in _values(everything) if op == -1] == [
            {"progress": 0}, {"progress": 1}, {"progress": 2}, "waiting", "went", None]
        assert [d for _, op, d in _values(everything) if op >= 0] == ["step0", "step1",
                                                                      "step2"]
        assert everything[-1].kind == "closed"
        assert [c.offset for c in everything] == list(range(9))
        # A value written before a step's call is committed before that step's outcome,
        # so before any later step's chunks.
        where = {d if isinstance(d, str) else f"p{d['progress']}": n
                 for n, (_, _, d) in enumerate(_values(everything)) if d is not None}
        assert where["p1"] < where["step2"] and where["p2"] < where["waiting"]
        assert _values(seen) == _values(everything)[:len(seen)]
        assert _values(after) == _values(everything)  # nothing more, nothing twice
        mine = [c for c in everything if c.op == -1]
        assert [(c.kind, c.data) for c in forked] == [(c.kind, c.data) for c in mine]
        assert {(c.step, c.execution, c.superseded) for c in mine} == {("", "workflow", False)}

    run(main())
