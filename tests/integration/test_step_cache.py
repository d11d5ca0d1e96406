"""``@duro.step(cache=duro.Cache(...))`` on both stores: a second run with the same
inputs does not call the step and records a hit (its meta says so, and from which run);
other arguments, scopes or versions miss; entries expire by the engine's clock; failures
are not cached; invalidation; codecs (no plaintext in the cache table); replay of a
history with a hit; a cached step routed to a queue."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import timedelta
from typing import Any

import pytest

import duro
from duro.serde import AesGcmCodec, CodecChain
from duro.testing import replay
from tests.conftest import run

CALLS: list[tuple[str, Any]] = []
FAIL: set[str] = set()


@pytest.fixture
def db_url(any_db_url: str) -> str:
    CALLS.clear()
    FAIL.clear()
    return any_db_url


@duro.step(name="sc.ask", cache=duro.Cache())
async def ask(prompt: str, model: str = "small") -> dict[str, Any]:
    CALLS.append(("ask", prompt))
    if prompt in FAIL:
        raise ConnectionError("model unavailable")
    return {"answer": f"{prompt}!", "model": model}


@duro.step(name="sc.flaky", cache=duro.Cache(), retry=duro.RetryPolicy(max_attempts=1))
async def flaky(prompt: str) -> str:
    CALLS.append(("flaky", prompt))
    if prompt in FAIL:
        raise ConnectionError("model unavailable")
    return f"{prompt}!"


@duro.workflow(name="sc.flaky")
async def flow_flaky(prompt: str) -> str:
    return await flaky(prompt)


@duro.step(name="sc.ask_v2", cache=duro.Cache(version=2))
async def ask_v2(prompt: str) -> str:
    CALLS.append(("ask_v2", prompt))
    return prompt.upper()


@duro.step(name="sc.tenant", cache=duro.Cache(scope=duro.Cache.header("tenant"),
                                             ttl=timedelta(minutes=10)))
def tenant_ask(prompt: str) -> str:  # a sync step: same path, in the thread pool
    CALLS.append(("tenant", prompt))
    return f"tenant:{prompt}"


@duro.step(name="sc.by_user", cache=duro.Cache(scope=duro.Cache.arg("user")))
async def by_user(user: str, prompt: str) -> str:
    CALLS.append(("user", (user, prompt)))
    return f"{user}:{prompt}"


@duro.step(name="sc.queued", queue="llm", cache=duro.Cache(ttl=60))
async def queued(prompt: str) -> str:
    CALLS.append(("queued", prompt))
    return f"q:{prompt}"


@duro.workflow(name="sc.flow")
async def flow(prompt: str, model: str = "small") -> dict[str, Any]:
    return await ask(prompt, model)


@duro.workflow(name="sc.kw")
async def flow_kw(prompt: str) -> dict[str, Any]:
    return await ask(model="small", prompt=prompt)  # the same call as ask(prompt)


@duro.workflow(name="sc.v2")
async def flow_v2(prompt: str) -> str:
    return await ask_v2(prompt)


@duro.workflow(name="sc.tenant")
async def flow_tenant(prompt: str) -> str:
    return await tenant_ask(prompt)


@duro.workflow(name="sc.user")
async def flow_user(user: str, prompt: str) -> str:
    return await by_user(user, prompt)


@duro.workflow(name="sc.queued")
async def flow_queued(prompt: str) -> str:
    return await queued(prompt)


async def _completed(handle: duro.WorkflowHandle[Any]) -> list[dict[str, Any]]:
    return [e.meta for e in await handle.history() if e.kind == "step_completed"]


def test_a_second_run_with_the_same_inputs_is_a_hit(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            first = await engine.start(flow, "hello", id="c1")
            assert await first.result(timeout=10) == {"answer": "hello!", "model": "small"}
            second = await engine.start(flow_kw, "hello", id="c2")
            assert await second.result(timeout=10) == {"answer": "hello!", "model": "small"}
            assert CALLS == [("ask", "hello")]  # the second run made no call
            run_id = (await first.describe()).run_id
            [miss] = await _completed(first)
            assert "cache_hit" not in miss
            [hit] = await _completed(second)
            assert hit == {"attempt": 1, "duration": 0.0, "cache_hit": True,
                           "cached_from": run_id}
            # Other arguments miss, and are cached in turn.
            other = await engine.start(flow, "hello", "large", id="c3")
            assert (await other.result(timeout=10))["model"] == "large"
            assert CALLS == [("ask", "hello"), ("ask", "hello")]
            [info] = await engine.cache.list()
            assert (info.step, info.scope, info.entries, info.expired) == ("sc.ask", "", 2, 0)

            # Replay of the history with the hit: no cache, no call, the same result.
            events = await second.history()
            replayed = replay(flow_kw, events, run_id=(await second.describe()).run_id,
                              workflow_id="c2")
            assert replayed.status == "completed"
            assert replayed.result == {"answer": "hello!", "model": "small"}
            assert len(CALLS) == 2

    run(main())


def test_versions_and_scopes_keep_entries_apart(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            for i, (tenant, prompt) in enumerate([("acme", "p"), ("acme", "p"),
                                                  ("globex", "p"), (None, "p"),
                                                  (None, "p")]):
                headers = {"tenant": tenant} if tenant else None
                handle = await engine.start(flow_tenant, prompt, id=f"t{i}", headers=headers)
                assert await handle.result(timeout=10) == "tenant:p"
            # acme once, globex once; without the header the call has no scope: it runs.
            assert [c for c in CALLS if c[0] == "tenant"] == [("tenant", "p")] * 4
            scopes = {(i.step, i.scope): i.entries for i in await engine.cache.list()}
            assert scopes == {("sc.tenant", "acme"): 1, ("sc.tenant", "globex"): 1}

            for i, user in enumerate(["ann", "bob", "ann"]):
                handle = await engine.start(flow_user, user, "q", id=f"u{i}")
                assert await handle.result(timeout=10) == f"{user}:q"
            assert [c for c in CALLS if c[0] == "user"] == [("user", ("ann", "q")),
                                                            ("user", ("bob", "q"))]
            # Same prompt, another step version: another key (a change of prompt/model).
            handle = await engine.start(flow_v2, "hello", id="v2")
            assert await handle.result(timeout=10) == "HELLO"
            assert ("ask_v2", "hello") in CALLS

    run(main())


def test_ttl_expiry_by_the_engine_clock(db_url: str) -> None:
    async def main() -> None:
        clock = duro.ManualClock()
        async with duro.Engine(db_url, clock=clock) as engine:
            headers = {"tenant": "acme"}
            for wid in ("e1", "e2"):
                handle = await engine.start(flow_tenant, "p", id=wid, headers=headers)
                assert await handle.result(timeout=10) == "tenant:p"
            assert len(CALLS) == 1
            clock.advance(601)  # past the 10-minute ttl: ignored on lookup
            [info] = await engine.cache.list()
            assert (info.entries, info.expired) == (1, 1)
            handle = await engine.start(flow_tenant, "p", id="e3", headers=headers)
            assert await handle.result(timeout=10) == "tenant:p"
            assert len(CALLS) == 2  # ran again, and replaced the entry
            [info] = await engine.cache.list()
            assert (info.entries, info.expired) == (1, 0)
            clock.advance(601)
            assert await engine.cache.invalidate(expired=True) == 1
            assert await engine.cache.list() == []

    run(main())


def test_the_workers_sweep_deletes_expired_entries(db_url: str) -> None:
    async def main() -> None:
        clock = duro.ManualClock()
        async with duro.Engine(db_url, clock=clock, poll_interval=0.02) as engine:
            handle = await engine.start(flow_tenant, "p", id="s1", headers={"tenant": "a"})
            assert await handle.result(timeout=10) == "tenant:p"
            assert len(await engine.cache.list()) == 1
            clock.advance(601 + 60)  # expired, and a sweep is due

            async def gone() -> bool:
                return await engine.cache.list() == []

            for _ in range(200):
                if await gone():
                    break
                await asyncio.sleep(0.02)
            assert await gone()

    run(main())


def test_failures_are_not_cached(db_url: str) -> None:
    async def main() -> None:
        FAIL.add("bad")
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(flow_flaky, "bad", id="f1")
            with pytest.raises(duro.WorkflowFailedError):
                await handle.result(timeout=10)
            assert await engine.cache.list() == []
            FAIL.clear()
            handle = await engine.start(flow_flaky, "bad", id="f2")
            assert await handle.result(timeout=10) == "bad!"
            assert len(CALLS) == 2  # the failure was not cached: the second run ran it

    run(main())


def test_invalidation_by_step_and_scope(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            for i, tenant in enumerate(["acme", "globex"]):
                h = await engine.start(flow_tenant, "p", id=f"i{i}", headers={"tenant": tenant})
                await h.result(timeout=10)
            h = await engine.start(flow, "x", id="ix")
            await h.result(timeout=10)
            assert len(await engine.cache.list()) == 3
            assert await engine.cache.invalidate(step="sc.tenant", scope="acme") == 1
            assert [(i.step, i.scope) for i in await engine.cache.list()] == [
                ("sc.ask", ""), ("sc.tenant", "globex")]
            assert await engine.cache.invalidate(scope="") == 1  # the global scope
            # Another namespace sees (and clears) none of these.
            assert await engine.with_namespace("other").cache.clear() == 0
            assert await engine.cache.clear() == 1
            calls = len(CALLS)
            h = await engine.start(flow, "x", id="iy")
            await h.result(timeout=10)
            assert len(CALLS) == calls + 1  # invalidated: it runs again
            with pytest.raises(duro.InvalidArgumentError):
                await engine.cache.invalidate(step="")
            with pytest.raises(duro.InvalidArgumentError):
                await engine.cache.invalidate(scope=3)  # type: ignore[arg-type]

    run(main())


def test_a_hit_under_codecs_stores_no_plaintext(db_url: str) -> None:
    secret = "launch-code-4242"
    codec = CodecChain([AesGcmCodec({"k": os.urandom(32)}, current_key_id="k")])

    async def main() -> None:
        async with duro.Engine(db_url, codec=codec) as engine:
            h1 = await engine.start(flow, secret, id="a1")
            assert await h1.result(timeout=10) == {"answer": f"{secret}!", "model": "small"}
            h2 = await engine.start(flow_kw, secret, id="a2")
            assert await h2.result(timeout=10) == {"answer": f"{secret}!", "model": "small"}
            assert len(CALLS) == 1
            [hit] = await _completed(h2)
            assert hit["cache_hit"] is True
            for blob in await _cached_results(engine):
                assert blob[:1] == b"\x00"  # an envelope (encrypted), never JSON
                assert secret.encode() not in blob
            # The first run's history and the cache hold the same stored bytes.
            raw = await engine.store.load_history((await h1.describe()).run_id)
            [stored] = [e.data for e in raw if e.kind == "step_completed"]
            assert [stored] == await _cached_results(engine)

    run(main())


async def _cached_results(engine: duro.Engine) -> list[bytes]:
    url = engine.url
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1].split("?")[0]) as conn:
            return [bytes(r[0]) for r in conn.execute("SELECT result FROM step_cache")]
    from urllib.parse import parse_qs, urlparse

    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    base = url.split("?")[0]
    async with await psycopg.AsyncConnection.connect(base) as conn:
        cur = await conn.execute(f'SELECT result FROM "{schema}".step_cache')
        return [bytes(r[0]) for r in await cur.fetchall()]


def test_a_cached_step_routed_to_a_queue(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, queues=["default", "llm"], poll_interval=0.02) as engine:
            h1 = await engine.start(flow_queued, "hi", id="q1")
            assert await h1.result(timeout=10) == "q:hi"
            h2 = await engine.start(flow_queued, "hi", id="q2")
            assert await h2.result(timeout=10) == "q:hi"
            assert CALLS == [("queued", "hi")]
            [miss] = await _completed(h1)
            assert miss.get("queue") == "llm" and "cache_hit" not in miss
            [hit] = await _completed(h2)
            assert hit["cache_hit"] is True
            assert hit["cached_from"] == (await h1.describe()).run_id

    run(main())


def _step_with(**cache: Any) -> None:
    async def fn(prompt: str) -> str:
        return prompt

    duro.step(name="sc.bad", cache=duro.Cache(**cache))(fn)


@pytest.mark.parametrize("cache", [
    {"ttl": 0}, {"ttl": -1}, {"ttl": "1h"}, {"ttl": float("nan")},
    {"scope": "tenant"}, {"scope": 3}, {"version": 1.5}, {"version": True},
    {"version": "bad\x00"}, {"scope": duro.Cache.arg("nope")},
])
def test_bad_cache_arguments_are_refused(cache: dict[str, Any]) -> None:
    with pytest.raises(duro.InvalidArgumentError):
        _step_with(**cache)


def test_a_cache_that_is_not_a_cache_is_refused() -> None:
    with pytest.raises(duro.InvalidArgumentError):
        duro.step(name="sc.bad2", cache={"ttl": 1})(ask.fn)  # type: ignore[arg-type]
    with pytest.raises(duro.InvalidArgumentError):
        duro.Cache.header("")
