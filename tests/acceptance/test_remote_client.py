"""The remote client (issue 16): the same behavioural tests, the same assertions, for an
embedded ``duro.Client(db_url)`` and a ``duro.Client("http://...")`` of a real ``duro
serve remote_app --worker`` process on that database — start (and again by id), result
(typed, failed, cancelled, terminated), signal (a delivery id taken once), update
(result, rejected), query, cancel, terminate, list/list_page/iter_runs with a filter and
a cursor, history, events; then the remote client's own errors (a server that is down,
what it refuses), and a PostgreSQL smoke test."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import duro
from duro.client import RemoteClient
from duro.errors import (
    AuthenticationError,
    LocalOnlyError,
    PermissionDeniedError,
    ServerUnavailableError,
    StepFailedError,
    WorkflowArgumentsError,
)
from duro.interceptors import ClientInterceptor, StartInput
from tests.acceptance.serving import APPS, serve
from tests.conftest import run

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import remote_app

KINDS = ["embedded", "remote"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the database URL, the server URL): one server for the module's tests."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('remote')}/duro.db"
    with serve(db_url, "remote_app", "--worker") as server:
        yield db_url, server.url


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, served: tuple[str, str]) -> str:
    """The client URL of the kind under test: the database, or the server."""
    db_url, server_url = served
    return db_url if request.param == "embedded" else server_url


def _prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}-"


def test_a_url_makes_the_client_of_its_kind(url: str) -> None:
    client = duro.Client(url)
    assert isinstance(client, duro.Client)
    assert isinstance(client, RemoteClient) == url.startswith("http")


def test_start_again_by_id_and_typed_results(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        async with duro.Client(url) as client:
            handle = await client.start(remote_app.greet, "ann", id=p + "g")
            assert handle.workflow_id == p + "g" and handle.run_id
            assert handle.start_status is not None
            again = await client.start(remote_app.greet, "bob", id=p + "g")
            assert again.run_id == handle.run_id  # the id is the idempotency key
            greeting = await handle.result(timeout=20)
            assert greeting == remote_app.Greeting(text="hello ANN", length=9)
            typed = client.get_handle(p + "g", result_type=remote_app.Greeting)
            assert await typed.result(timeout=20) == greeting
            untyped = client.get_handle(p + "g")
            assert await untyped.result(timeout=20) == {"text": "hello ANN", "length": 9}
            info = await handle.describe()
            assert info.status == duro.RunStatus.COMPLETED and info.history_length == 3
            assert info.result_json == {"text": "hello ANN", "length": 9}
            assert await handle.status() == duro.RunStatus.COMPLETED
            with pytest.raises(duro.WorkflowAlreadyStartedError):
                await client.start(remote_app.greet, "cy", id=p + "g", on_reuse="fail")
            # By name, with the options of a start.
            named = await client.start("remote_app.greet", "dee", id=p + "n",
                                       queue="default", priority=3,
                                       search_attributes={"team": "blue"},
                                       headers={"tenant": "acme"})
            assert (await named.result(timeout=20)).text == "hello DEE"
            described = await named.describe()
            assert described.search_attributes == {"team": "blue"}
            assert described.headers == {"tenant": "acme"}

    run(body())


def test_failure_cancel_and_terminate_raise_the_same_errors(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        async with duro.Client(url) as client:
            paid = await client.start(remote_app.pay, 5, id=p + "pay")
            with pytest.raises(duro.WorkflowFailedError) as failed:
                await paid.result(timeout=20)
            chain = failed.value.cause.chain()
            assert [c.type for c in chain] == [
                f"{StepFailedError.__module__}.StepFailedError",
                "duro.errors.NonRetryableError", "remote_app.PaymentDeclined"]
            assert chain[1].message == "card declined for 5"
            assert chain[1].non_retryable and "raise duro.NonRetryableError" in \
                chain[1].traceback

            cancelled = await client.start(remote_app.counter, 0, id=p + "cancel")
            await cancelled.cancel()
            with pytest.raises(duro.WorkflowCancelledError):
                await cancelled.result(timeout=20)
            with pytest.raises(duro.RunNotFoundError):  # no live run to cancel
                await client.cancel(p + "cancel")

            stopped = await client.start(remote_app.counter, 0, id=p + "stop")
            await client.terminate(p + "stop", reason="duplicate")
            with pytest.raises(duro.WorkflowTerminatedError, match="duplicate"):
                await stopped.result(timeout=20)
            assert await stopped.status() == duro.RunStatus.TERMINATED

            waiting = await client.start(remote_app.counter, 0, id=p + "wait")
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await waiting.result(timeout=0.3)
            assert time.monotonic() - started < 5
            await waiting.terminate()

    run(body())


def test_signal_update_and_query(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        async with duro.Client(url) as client:
            handle = await client.start(remote_app.counter, 1, id=p + "c")
            await handle.signal("inc", 2, id="delivery-1")
            await client.signal(p + "c", "inc", 2, id="delivery-1")  # the same delivery
            assert await handle.update("add", 3, timeout=20) == 6
            assert await client.update(p + "c", "add", 4, id="u-1", timeout=20) == 10
            assert await client.update(p + "c", "add", 4, id="u-1", timeout=20) == 10
            with pytest.raises(duro.UpdateRejectedError, match="cannot add -1"):
                await handle.update("add", -1, timeout=20)
            assert await handle.query("total", timeout=20) == 10
            assert repr(await client.query(p + "c", "total", type=float, timeout=20)) == "10.0"
            with pytest.raises(duro.QueryError):
                await handle.query("nosuch", timeout=20)
            await handle.signal("stop")
            assert await handle.result(timeout=20) == {"total": 10, "signals": 1}
            with pytest.raises(duro.RunNotFoundError):
                await handle.signal("inc", 1)  # the run has ended

            # Signal- and update-with-start: the first call makes the run.
            hooked = await client.signal_with_start(remote_app.counter, 5, id=p + "sws",
                                                    signal="inc", payload=1, signal_id="d")
            _, total = await client.update_with_start(remote_app.counter, 0, id=p + "sws",
                                                      update="add", update_args=[2],
                                                      timeout=20)
            assert total == 8
            await hooked.signal("stop")
            assert await hooked.result(timeout=20) == {"total": 8, "signals": 1}

    run(body())


def test_list_pages_history_and_events(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        async with duro.Client(url) as client:
            for name in ("a", "b", "c"):
                await (await client.start(remote_app.greet, name, id=p + name)).result(
                    timeout=20)
            runs = await client.list(id_prefix=p, status="completed")
            assert [r.workflow_id for r in runs] == [p + "c", p + "b", p + "a"]
            assert await client.list(id_prefix=p, limit=0) == []
            first = await client.list_page(id_prefix=p, name="remote_app.greet", page_size=2)
            assert [r.workflow_id for r in first.runs] == [p + "c", p + "b"]
            assert first.next_cursor is not None
            rest = await client.list_page(id_prefix=p, page_size=2, cursor=first.next_cursor)
            assert [r.workflow_id for r in rest.runs] == [p + "a"]
            assert rest.next_cursor is None
            assert [r.workflow_id async for r in client.iter_runs(id_prefix=p, page_size=1)] \
                == [p + "c", p + "b", p + "a"]
            with pytest.raises(duro.InvalidArgumentError):
                await client.list_page(cursor="not a cursor")
            with pytest.raises(duro.InvalidArgumentError):
                await client.list(status="nosuch")

            events = await client.get_handle(p + "a").history()
            assert [e.kind for e in events] == ["run_started", "step_completed",
                                                "run_completed"]
            assert events[1].data == "A" and events[1].name == "remote_app.shout"

            live = await client.start(remote_app.counter, 0, id=p + "live")
            seen: list[str] = []

            async def follow() -> None:
                async for event in live.events():
                    seen.append(event.kind)

            following = asyncio.ensure_future(follow())
            await live.signal("inc", 1)
            await live.signal("stop")
            await asyncio.wait_for(following, 20)  # ends with the run
            assert seen == ["run_started", "signal_received", "signal_received",
                            "run_completed"]
            tail = [e.seq async for e in live.events(after=1)]
            assert tail == [2, 3]

    run(body())


class Recorder(ClientInterceptor):
    """Sees every call, and adds a header to each start."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self, input: StartInput, next: Any) -> Any:
        self.calls.append(f"start:{input.signal or input.update or ''}")
        return await next(dataclasses.replace(input, headers={"via": "interceptor"}))

    async def signal(self, input: Any, next: Any) -> None:
        self.calls.append(f"signal:{input.name}")
        await next(input)

    async def update(self, input: Any, next: Any) -> Any:
        self.calls.append(f"update:{input.name}")
        return await next(input)

    async def query(self, input: Any, next: Any) -> Any:
        self.calls.append(f"query:{input.name}")
        return await next(input)

    async def terminate(self, input: Any, next: Any) -> None:
        self.calls.append("terminate")
        await next(input)


def test_interceptors_see_the_same_calls(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        recorder = Recorder()
        async with duro.Client(url, interceptors=[recorder]) as client:
            handle = await client.start(remote_app.counter, 0, id=p + "i")
            await handle.signal("inc", 1)
            assert await handle.update("add", 1, timeout=20) == 2
            assert await handle.query("total", timeout=20) == 2
            handle2, total = await client.update_with_start(
                remote_app.counter, 0, id=p + "i", update="add", update_args=[1], timeout=20)
            assert total == 3 and handle2.workflow_id == p + "i"
            assert (await handle.describe()).headers == {"via": "interceptor"}
            await handle.terminate()
        assert recorder.calls == ["start:", "signal:inc", "update:add", "query:total",
                                  "start:add", "terminate"]

    run(body())


def test_bad_input_and_missing_runs(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        async with duro.Client(url) as client:
            with pytest.raises(duro.RunNotFoundError):
                await client.get_handle(p + "nosuch").describe()
            with pytest.raises(duro.RunNotFoundError):
                await client.signal(p + "nosuch", "inc", 1)
            with pytest.raises(duro.InvalidArgumentError):
                await client.start(remote_app.greet, "x", id="bad\x00id")
            with pytest.raises(WorkflowArgumentsError):
                await client.start(remote_app.greet, 1, 2, id=p + "args")
            await client.start(remote_app.counter, 0, id=p + "s")
            with pytest.raises(duro.SerializationError):
                await client.signal(p + "s", "inc", object())
            await client.terminate(p + "s")
            done = await client.start(remote_app.greet, "z", id=p + "z")
            await done.result(timeout=20)
            with pytest.raises(duro.InvalidArgumentError):  # refused by the store/server
                await client.reset(p + "z", to=999)
            with pytest.raises(duro.DuroError, match="only failed"):
                await client.retry(p + "z")
            retried = await client.reset(p + "z", to=1)
            assert await retried.result(timeout=20) == remote_app.Greeting(text="hello Z",
                                                                           length=7)

    run(body())


# -- the remote client's own ----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_server_that_is_down_is_reported_soon() -> None:
    async def body() -> None:
        async with duro.Client(f"http://127.0.0.1:{_closed_port()}") as client:
            started = time.monotonic()
            with pytest.raises(ServerUnavailableError, match="no answer"):
                await client.get_handle("x").describe()
            with pytest.raises(ServerUnavailableError):
                await client.start("remote_app.greet", "x")
            assert time.monotonic() - started < 10  # bounded retries, no hang

    run(body())


def test_published_state_children_and_resume(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        async with duro.Client(url) as client:
            handle = await client.start(remote_app.family, 2, id=p + "family")
            assert await handle.get_state("missing", default="none") == "none"
            with pytest.raises(TimeoutError):
                await handle.wait_state("missing", timeout=0.3)

            async def progress() -> int:
                value = await handle.get_state("progress", type=dict[str, int])
                return -1 if value is None else value["children"]

            for _ in range(400):  # bounded: the two children take milliseconds
                if await progress() == 2:
                    break
                await asyncio.sleep(0.05)
            assert await handle.wait_state("progress", timeout=10) == {"children": 2}
            kids = await handle.children()
            assert sorted(k.workflow_name for k in kids) == ["remote_app.greet"] * 2
            assert all(k.status == duro.RunStatus.COMPLETED for k in kids)
            with pytest.raises(duro.RunNotFoundError):
                await client.get_handle(p + "none").children()
            # Resume is for a parked run: this one is not.
            with pytest.raises(duro.RunNotFoundError, match="parked"):
                await client.resume(p + "family")
            await handle.signal("stop")
            assert await handle.result(timeout=20) == 2 * len("hello C0")

    run(body())


def test_usage(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        async with duro.Client(url) as client:
            handle = await client.start(remote_app.spend, "four", id=p + "spend")
            assert await handle.result(timeout=20) == "ok"
            usage = await handle.usage()
            assert (usage.total.calls, usage.total.input_tokens, usage.total.output_tokens,
                    usage.cost) == (1, 4, 2, 0.25)
            assert usage.by_model["remote-model"].calls == 1
            assert usage.by_step["remote_app.llm"].cost == 0.25
            with pytest.raises(duro.RunNotFoundError):
                await client.get_handle(p + "none").usage()

    run(body())


def test_budgets(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        shared = duro.Budget(usd=0.5, key=p + "tenant")
        async with duro.Client(url) as client:
            handle = await client.start(remote_app.agent, 5, id=p + "agent",
                                        budget=[shared, duro.Budget(tokens=1000)])
            assert await handle.result(timeout=20) == [0, 1, p + "tenant"]
            (row,) = await client.budgets.list(p + "tenant")
            assert (row.spent_usd, row.settled, row.limit_usd) == (0.5, 2, 0.5)
            raised = await client.budgets.set_limit(p + "tenant", usd=0.75)
            assert (raised.key, raised.limit_usd) == (p + "tenant", 0.75)
            again = await client.start(remote_app.agent, 5, id=p + "again", budget=shared)
            assert await again.result(timeout=20) == [0, p + "tenant"]
            with pytest.raises(duro.InvalidArgumentError):
                await client.budgets.set_limit(p + "nobody", usd=1.0)
            with pytest.raises(duro.InvalidArgumentError):
                await client.budgets.set_limit(p + "tenant", usd=0.0)
            with pytest.raises(duro.InvalidArgumentError):
                await client.start(remote_app.agent, 1, budget="lots")  # type: ignore[arg-type]

    run(body())


def test_what_a_remote_client_refuses(served: tuple[str, str]) -> None:
    _, server_url = served

    async def body() -> None:
        with pytest.raises(duro.InvalidArgumentError, match="codec"):
            duro.Client(server_url, codec=duro.serde.CodecChain())
        with pytest.raises(duro.InvalidArgumentError, match="server URL"):
            duro.Client("sqlite:///x.db", token="t")
        client: Any = duro.Client(server_url)
        with pytest.raises(duro.DuroError, match="not open"):
            await client.list()
        async with client:
            with pytest.raises(LocalOnlyError):
                client.store  # noqa: B018 - the property refuses
            with pytest.raises(LocalOnlyError):
                await client.tokens.create("x")
            handle = await client.start(remote_app.counter, 0)
            with pytest.raises(duro.InvalidArgumentError, match="'/'"):
                await client.get_handle("a/b").describe()
            await handle.terminate()
            # Schedules through the routes.
            info = await client.schedules.create(f"s-{uuid.uuid4().hex[:6]}",
                                                 remote_app.greet, args=["s"], every=3600,
                                                 paused=True)
            assert (await client.schedules.get(info.schedule_id)).paused
            resumed = await client.schedules.resume(info.schedule_id)
            assert not resumed.paused
            updated = await client.schedules.update(info.schedule_id, args=["u"],
                                                    overlap="allow_all")
            assert updated.args == ["u"] and updated.overlap == "allow_all"
            assert updated.next_fire_at == resumed.next_fire_at
            with pytest.raises(duro.InvalidArgumentError, match="cron"):
                await client.schedules.update(info.schedule_id, cron="0 2 * *")
            with pytest.raises(duro.InvalidArgumentError, match="not both"):
                await client.schedules.update(info.schedule_id, cron="0 2 * * *", every=9)
            with pytest.raises(duro.ScheduleNotFoundError):
                await client.schedules.update("nope", args=["x"])
            triggered = await client.schedules.trigger(info.schedule_id)
            assert await triggered.result(timeout=20) == remote_app.Greeting(text="hello U",
                                                                             length=7)
            assert info.schedule_id in [s.schedule_id for s in await client.schedules.list()]
            await client.schedules.delete(info.schedule_id)
            with pytest.raises(duro.ScheduleNotFoundError):
                await client.schedules.get(info.schedule_id)
            assert [w.live for w in await client.workers()] == [True]
            assert all(q.config.name for q in await client.queues())

    run(body())


def test_events_resume_across_a_server_restart(tmp_path: Path) -> None:
    """The stream ends when its server stops; ``events()`` opens it again (on the server
    that comes back at the same address) after the last event it gave: each event once,
    in order."""
    db_url = f"sqlite:///{tmp_path}/duro.db"
    with serve(db_url, "remote_app", "--worker") as first:
        port = int(first.url.rsplit(":", 1)[1])

        async def body() -> None:
            async with duro.Client(first.url) as client:
                handle = await client.start(remote_app.counter, 0, id="ev")
                seen: list[tuple[int, str]] = []

                async def follow() -> None:
                    async for event in handle.events():
                        seen.append((event.seq, event.kind))

                following = asyncio.ensure_future(follow())
                await handle.signal("inc", 1)
                deadline = time.monotonic() + 20
                while len(seen) < 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                first.proc.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(first.proc.wait, 30) == 0
                again = serve(db_url, "remote_app", "--worker", port=port)
                await asyncio.to_thread(again.__enter__)
                try:
                    # With a delivery id: sent again if the pooled connection was stale.
                    await handle.signal("inc", 2, id="after-restart")
                    await handle.signal("stop", id="stop")
                    await asyncio.wait_for(following, 30)
                finally:
                    await asyncio.to_thread(again.__exit__, None, None, None)
                assert [seq for seq, _ in seen] == list(range(len(seen)))
                assert [kind for _, kind in seen] == [
                    "run_started", "signal_received", "signal_received", "signal_received",
                    "run_completed"]

        run(body())


def _tokens(db_url: str) -> tuple[str, str]:
    """A write token and a read token, made on the database."""
    async def body() -> tuple[str, str]:
        async with duro.Client(db_url) as client:
            write, _ = await client.tokens.create("remote tests", scope="write")
            read, _ = await client.tokens.create("remote reader", scope="read")
        return write, read

    return run(body())


def test_api_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``duro serve --auth``: a valid token works, a wrong one or none is an
    AuthenticationError, a read token on a write route a PermissionDeniedError."""
    monkeypatch.delenv("DURO_TOKEN", raising=False)
    db_url = f"sqlite:///{tmp_path}/duro.db"
    write, read = _tokens(db_url)
    with serve(db_url, "remote_app", "--worker", "--auth") as server:
        async def body() -> None:
            async with duro.Client(server.url, token=write) as client:
                handle = await client.start(remote_app.greet, "tok", id="tok")
                assert await handle.result(timeout=20) == remote_app.Greeting(
                    text="hello TOK", length=9)
            forged = "duro_0123456789abcdef_" + "x" * 43
            for token in (forged, None, write + "x"):
                async with duro.Client(server.url, token=token) as client:
                    with pytest.raises(AuthenticationError):
                        await client.list()
                    with pytest.raises(AuthenticationError):
                        await client.start(remote_app.greet, "no", id="refused")
            async with duro.Client(server.url, token=read) as client:
                assert [r.workflow_id for r in await client.list()] == ["tok"]
                with pytest.raises(PermissionDeniedError):
                    await client.start(remote_app.greet, "no", id="refused")
            monkeypatch.setenv("DURO_TOKEN", read)  # the default token
            async with duro.Client(server.url) as client:
                assert await client.get_handle("tok").status() == duro.RunStatus.COMPLETED
                with pytest.raises(duro.RunNotFoundError):
                    await client.get_handle("refused").describe()  # nothing was stored

        run(body())


@pytest.mark.postgres
@pytest.mark.parametrize("kind", KINDS)
def test_postgres_smoke(kind: str, pg_url: str) -> None:
    with serve(pg_url, "remote_app", "--worker") as server:
        url = pg_url if kind == "embedded" else server.url

        async def body() -> None:
            async with duro.Client(url) as client:
                handle = await client.start(remote_app.counter, 1, id="pg")
                await handle.signal("inc", 1, id="d")
                await handle.signal("inc", 1, id="d")
                assert await handle.update("add", 1, timeout=20) == 3
                assert await handle.query("total", timeout=20) == 3
                await handle.signal("stop")
                assert await handle.result(timeout=20) == {"total": 3, "signals": 1}
                greeting = await (await client.start(remote_app.greet, "pg")).result(
                    timeout=20)
                assert greeting == remote_app.Greeting(text="hello PG", length=8)

        run(body())


def test_a_taken_id_raises_the_same_typed_error_with_its_run(url: str) -> None:
    async def body() -> None:
        p = _prefix()
        async with duro.Client(url) as client:
            first = await client.start(remote_app.counter, 0, id=p + "taken")
            with pytest.raises(duro.WorkflowAlreadyStartedError) as again:
                await client.start(remote_app.counter, 0, id=p + "taken", on_conflict="fail")
            assert type(again.value) is duro.WorkflowAlreadyStartedError
            assert (again.value.workflow_id, again.value.run_id, again.value.workflow_name) \
                == (p + "taken", first.run_id, "remote_app.counter")
            for attempt in (client.start(remote_app.greet, "x", id=p + "taken"),
                            client.signal_with_start(remote_app.greet, "x", id=p + "taken",
                                                     signal="inc", payload=1)):
                with pytest.raises(duro.WorkflowIdTakenError) as other:
                    await attempt
                assert (other.value.run_id, other.value.workflow_name) == (
                    first.run_id, "remote_app.counter")
            # A reason too long to keep is refused before anything changes, on both.
            with pytest.raises(duro.InvalidArgumentError, match="at most 4096"):
                await client.terminate(p + "taken", reason="x" * 5000)
            assert await first.status() != duro.RunStatus.TERMINATED
            await client.terminate(p + "taken", reason="y" * 4096)
            assert await first.status() == duro.RunStatus.TERMINATED

    run(body())


def test_ids_spelt_like_path_segments(served: tuple[str, str]) -> None:
    """"." and ".." are ids like any other (a URL's dot segments are spelt out, not
    dropped on the way); made on the database, reached through the server."""
    db_url, server_url = served

    async def body() -> None:
        async with duro.Client(db_url) as local, duro.Client(server_url) as remote:
            for wid in (".", ".."):
                await local.start(remote_app.counter, 0, id=wid)
                assert (await remote.get_handle(wid).describe()).workflow_id == wid
                await remote.signal(wid, "inc", 2)
                await remote.terminate(wid)
                assert await local.get_handle(wid).status() == duro.RunStatus.TERMINATED
                assert [e.kind for e in await remote.get_handle(wid).history()][-1] == \
                    "run_terminated"

    run(body())
