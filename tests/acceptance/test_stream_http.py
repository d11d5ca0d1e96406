"""A run's stream over HTTP: ``GET /v1/runs/{id}/stream`` (Server-Sent Events) of a real
``duro serve stream_app --worker`` process — live, resumable with ``Last-Event-ID`` or
``?from=``, ended by the run's end, bad offsets refused with a 400 problem — and the
remote client's ``handle.stream()`` over it, the same items as the embedded one's."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import duro
from tests.acceptance.serving import APPS, problem, serve, sse_messages
from tests.conftest import run, wait_until

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import stream_app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the database URL, the server URL)."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('stream')}/duro.db"
    with serve(db_url, "stream_app", "--worker") as server:
        yield db_url, server.url


def _read(http: httpx.Client, path: str, **kw: object) -> list[dict[str, str]]:
    with http.stream("GET", path, **kw) as response:  # type: ignore[arg-type]
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse_messages(response.iter_lines()))


def test_the_stream_route_is_live_and_resumable(served: tuple[str, str]) -> None:
    url = served[1]
    with httpx.Client(base_url=url, timeout=30) as http:
        started = http.post("/v1/runs", json={"workflow": "stream_app.talk", "id": "h-1",
                                              "args": [30, 0.005]})
        assert started.status_code in (201, 202), started.text
        live = _read(http, "/v1/runs/h-1/stream")  # from the start, while it runs
        items = [m for m in live if "id" in m]
        assert [int(m["id"]) for m in items] == list(range(30))
        assert '"data":"c29"' in items[-1]["data"] and '"kind":"chunk"' in items[-1]["data"]
        assert live[-1]["event"] == "end" and '"status":"completed"' in live[-1]["data"]
        resumed = _read(http, "/v1/runs/h-1/stream", headers={"Last-Event-ID": "9"})
        assert [m["id"] for m in resumed if "id" in m] == [m["id"] for m in items[10:]]
        assert resumed[-1]["event"] == "end"
        from_20 = _read(http, "/v1/runs/h-1/stream", params={"from": "20"})
        assert [m["id"] for m in from_20 if "id" in m] == [m["id"] for m in items[20:]]
        for bad in ("-1", "x", "1.5"):
            problem(http.get("/v1/runs/h-1/stream", params={"from": bad}), 400,
                    "invalid_argument")
        problem(http.get("/v1/runs/h-1/stream", headers={"Last-Event-ID": "-3"}), 400,
                "invalid_argument")
        problem(http.get("/v1/runs/nosuch/stream"), 404, "run_not_found")


def test_a_workflows_values_and_its_close_over_http(served: tuple[str, str]) -> None:
    url = served[1]

    async def body() -> None:
        async with duro.Client(url) as remote:
            handle = await remote.start(stream_app.publish, 5, id="h-3")
            got = [c async for c in handle.stream()]  # ends at the close, run still live
            assert [(c.kind, c.op, c.data) for c in got] == [
                *(("chunk", -1, {"progress": i}) for i in range(5)), ("closed", -1, None)]
            assert not (await handle.describe()).status.is_terminal
            await handle.signal("finish")
            assert await handle.result(timeout=20) == 5

    run(body())
    with httpx.Client(base_url=url, timeout=30) as http:
        messages = _read(http, "/v1/runs/h-3/stream")
        assert [m["id"] for m in messages if "id" in m] == [str(i) for i in range(6)]
        assert '"kind":"closed"' in messages[-2]["data"] and messages[-1]["event"] == "end"


def test_remote_and_embedded_readers_get_the_same_items(served: tuple[str, str]) -> None:
    db_url, url = served

    async def body() -> None:
        async with duro.Client(url) as remote, duro.Client(db_url) as embedded:
            handle = await remote.start(stream_app.talk, 25, 0.005, id="h-2")
            got = [c async for c in handle.stream()]
            assert [c.data for c in got] == [f"c{i}" for i in range(25)]
            assert [c async for c in remote.get_handle("h-2").stream(from_offset=5)] \
                == got[5:]
            assert [c async for c in embedded.get_handle("h-2").stream()] == got
            with pytest.raises(duro.InvalidArgumentError):
                await anext(aiter(handle.stream(from_offset=-1)))

    run(body())


def test_a_client_gone_mid_stream_leaves_no_poller_behind(tmp_path: Path) -> None:
    """Clients that read a live stream's first items and go away: once each is gone the
    server polls the store for it no more (its pending read was left running until the
    run ended, one poller per client gone). A real uvicorn on a loopback port, in this
    process so that its tasks can be counted."""
    import uvicorn

    from duro.server import create_app

    async def body() -> None:
        engine = duro.Engine(f"sqlite:///{tmp_path}/leak.db")
        server = uvicorn.Server(uvicorn.Config(create_app(engine, own_client=True),
                                               host="127.0.0.1", port=0, log_level="warning"))
        serving = asyncio.ensure_future(server.serve())
        try:
            await wait_until(lambda: server.started, timeout=30)
            port = server.servers[0].sockets[0].getsockname()[1]
            await engine.start(stream_app.talk, 2, 3600.0, id="long-talk")  # c0, then quiet
            baseline = len(asyncio.all_tasks())
            for _ in range(10):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /v1/runs/long-talk/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                seen = b""
                while b"id: 0" not in seen:
                    seen += await asyncio.wait_for(reader.read(65536), 30)
                writer.close()
            # Each stream's tasks end once its client is gone (bounded, not a sleep).
            await wait_until(lambda: len(asyncio.all_tasks()) <= baseline, timeout=15)
            assert len(asyncio.all_tasks()) <= baseline
        finally:
            server.should_exit = True
            await serving

    run(body())
