"""Queries through the store (issue 15, item 3): the store's side on both stores (ask,
look, claim once, a dead worker's claim taken over, answer, forget, expire), and the
whole path with codecs: a client's question, a worker's answer, errors and timeouts."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

import duro
from duro.client._query import ask_workers
from duro.serde import AesGcmCodec, CodecChain, ZstdCodec
from duro.store import QueryAnswer, QueryRequest, open_store
from tests.conftest import run


def _ask(query_id: str, name: str = "wf", expires_in: float = 60.0) -> QueryRequest:
    now = time.time()
    return QueryRequest(query_id=query_id, run_id="r1", workflow_id="w1",
                        workflow_name=name, name="total", args=b"[1]",
                        headers=b'{"who":"ann"}', created_at=now, expires_at=now + expires_in)


def test_the_store_keeps_a_question_until_it_is_answered_and_read(any_db_url: str) -> None:
    async def main() -> None:
        store = open_store(any_db_url)
        await store.open()
        try:
            now = time.time()
            await store.ask_query(_ask("q1"), now=now)
            await store.ask_query(_ask("q2", name="other"), now=now)
            await store.ask_query(_ask("old", expires_in=-1), now=now)
            found = await store.open_queries(["wf"], now=now, stale=now - 5, limit=10)
            assert [q.query_id for q in found] == ["q1"]  # its workflow, unexpired
            assert found[0].args == b"[1]" and found[0].headers == b'{"who":"ann"}'
            assert await store.claim_query("q1", "worker-a", now=now, stale=now - 5)
            assert not await store.claim_query("q1", "worker-b", now=now, stale=now - 5)
            assert await store.open_queries(["wf"], now=now, stale=now - 5, limit=10) == []
            # worker-a died: after the claim window another worker takes the question.
            later = now + 6
            assert [q.query_id for q in await store.open_queries(
                ["wf"], now=later, stale=later - 5, limit=10)] == ["q1"]
            assert await store.claim_query("q1", "worker-b", now=later, stale=later - 5)
            assert await store.query_answer("q1") is None
            await store.answer_query("q1", QueryAnswer(answer=b"42"), now=later)
            await store.answer_query("q1", QueryAnswer(answer=b"43"), now=later)  # once
            assert await store.query_answer("q1") == QueryAnswer(answer=b"42")
            await store.forget_query("q1")
            assert await store.query_answer("q1") is None
            assert await store.expire_queries(now=now) == 1  # "old"
            assert await store.query_answer("q2") is None
        finally:
            await store.close()

    run(main())


@duro.workflow(name="sq.counter")
async def counter(start: int) -> int:
    total = start
    duro.on_query("total", lambda plus=0: total + plus)

    def boom() -> int:
        raise ValueError("no such thing")

    duro.on_query("boom", boom)
    await duro.wait_for_signal("stop")
    return total


def _chain() -> CodecChain:
    return CodecChain([ZstdCodec(), AesGcmCodec({"k1": b"0" * 32}, current_key_id="k1")])


def test_a_worker_answers_a_question_asked_through_the_store(any_db_url: str) -> None:
    """The path a client without the code takes (called directly here: this process
    has the code, so ``query()`` would answer locally), with codecs on both sides."""
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02, codec=_chain()) as engine, \
                duro.Client(any_db_url, codec=_chain()) as client:
            handle = await engine.start(counter, 40, id="sq-1")
            record = await client.store.get_run("sq-1")
            assert record is not None
            raw = await ask_workers(client, record, "total", [2], timeout=20)
            assert orjson.loads(raw) == 42
            with pytest.raises(duro.QueryError, match="no such thing"):
                await ask_workers(client, record, "boom", [], timeout=20)
            with pytest.raises(duro.QueryError, match="has no query 'nope'"):
                await ask_workers(client, record, "nope", [], timeout=20)
            await handle.signal("stop")
            assert await handle.result(timeout=20) == 40
            # Ended and no longer held: answered by replay.
            done = await client.store.get_run("sq-1")
            assert done is not None
            assert orjson.loads(await ask_workers(client, done, "total", [], timeout=20)) == 40
            # Nothing is left behind: every question was read and deleted.
            assert await engine.store.expire_queries(now=time.time() + 3600) == 0

    run(main())


def test_no_worker_for_the_workflow_means_a_clear_timeout(any_db_url: str) -> None:
    async def main() -> Any:
        async with duro.Engine(any_db_url, worker=False) as engine:
            await engine.start(counter, 1, id="sq-2")
            record = await engine.store.get_run("sq-2")
            assert record is not None
            started = time.monotonic()
            with pytest.raises(duro.QueryTimeoutError, match=r"'sq\.counter'"):
                await ask_workers(engine, record, "total", [], timeout=0.3)
            assert time.monotonic() - started < 5
            assert await engine.store.expire_queries(now=time.time() + 3600) == 0

    run(main())


def test_query_refuses_a_bad_timeout(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, worker=False) as engine:
            with pytest.raises(duro.InvalidArgumentError):
                await engine.query("x", "total", timeout=-1)

    run(main())
