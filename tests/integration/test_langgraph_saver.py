"""duro.langgraph.DuroSaver against LangGraph's own conformance suite
(langgraph-checkpoint-conformance), on SQLite and PostgreSQL, plus what the suite does
not cover: the sync methods, from a thread and from the saver's own loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)

from duro.errors import InvalidArgumentError
from duro.langgraph import DuroSaver, SaverLoopError
from tests.conftest import run


def _register(url: str) -> Any:
    @checkpointer_test(name=f"DuroSaver[{url.split(':')[0]}]")
    async def factory() -> AsyncGenerator[DuroSaver, None]:
        async with DuroSaver(url) as saver:
            yield saver

    return factory


def test_conformance(any_db_url: str) -> None:
    """Every base capability passes; the extended ones (delete_for_runs, copy_thread,
    prune) pass too."""
    report = run(validate(_register(any_db_url)), timeout=180)
    failed = {cap: r.failures for cap, r in report.results.items() if r.passed is False}
    assert not failed, failed
    for cap in BASE_CAPABILITIES | EXTENDED_CAPABILITIES:
        result = report.results[cap.value]
        assert result.passed is True, (cap, result)
    assert report.results


def test_sync_methods_from_a_thread_and_refused_on_its_loop(any_db_url: str) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    with DuroSaver(any_db_url, namespace="ns1") as saver:
        cfg = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        cp = empty_checkpoint()
        cp["channel_values"] = {"x": 1}
        cp["channel_versions"] = {"x": 1}
        stored = saver.put(cfg, cp, {"step": 0}, {"x": 1})
        saver.put_writes(stored, [("x", 2)], "task-1")
        got = saver.get_tuple({"configurable": {"thread_id": "t"}})
        assert got is not None and got.checkpoint["channel_values"] == {"x": 1}
        assert got.pending_writes == [("task-1", "x", 2)]
        assert [t.config for t in saver.list(None)] == [stored]

        # Called from a running loop (not the saver's), a sync method still answers.
        async def inside() -> Any:
            return saver.get_tuple(stored)

        assert run(inside()) is not None
        # On the saver's own loop it would wait for itself: refused, clearly.
        assert saver._loop is not None
        fut = asyncio.run_coroutine_threadsafe(inside(), saver._loop)
        with pytest.raises(SaverLoopError):
            fut.result(10)
        with pytest.raises(InvalidArgumentError):
            saver.get_tuple({"configurable": {}})
        with pytest.raises(InvalidArgumentError, match="prune strategy must be one of "
                           "'keep_latest', 'delete', not 'nope'"):
            saver.prune(["t"], strategy="nope")
    # Another namespace sees none of it.
    with DuroSaver(any_db_url, namespace="ns2") as other:
        assert other.get_tuple({"configurable": {"thread_id": "t"}}) is None
