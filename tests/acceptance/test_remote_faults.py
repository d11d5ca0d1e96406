"""The remote client under faults, against a real ``duro serve`` (a proxy in front of it
that loses one answer, a restart), and against servers that are not duro's or do not
answer: what it sends again and what it does not, how long it waits, which errors."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

import duro
from duro.errors import ServerUnavailableError
from tests.acceptance.serving import APPS, Served, serve
from tests.conftest import run

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import remote_app


class LosingProxy:
    """A TCP proxy to ``upstream`` that, for the next request starting with ``drop``,
    forwards the request and then closes the client's connection instead of giving it
    the answer (the request was taken, its answer lost)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.drop: bytes | None = None
        self.dropped = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _client(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        losing = asyncio.Event()

        async def to_server() -> None:
            while chunk := await reader.read(65536):
                if self.drop is not None and chunk.startswith(self.drop):
                    self.drop = None
                    losing.set()
                up_writer.write(chunk)
                await up_writer.drain()

        async def to_client() -> None:
            while chunk := await up_reader.read(65536):
                if losing.is_set():
                    self.dropped += 1
                    return  # the answer goes nowhere: the connection is closed
                writer.write(chunk)
                await writer.drain()

        pumps = [asyncio.ensure_future(to_server()), asyncio.ensure_future(to_client())]
        with contextlib.suppress(Exception):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for w in (writer, up_writer):
            w.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Served]]:
    db_url = f"sqlite:///{tmp_path}/duro.db"
    with serve(db_url, "remote_app", "--worker") as server:
        yield db_url, server


def _signals(history: list[duro.Event]) -> int:
    return sum(e.kind == "signal_received" for e in history)


def test_a_lost_answer_is_sent_again_only_when_it_is_the_same_request(
        served: tuple[str, Served]) -> None:
    db_url, server = served

    async def body() -> None:
        proxy = LosingProxy(int(server.url.rsplit(":", 1)[1]))
        url = await proxy.start()
        async with duro.Client(db_url) as local, duro.Client(url) as remote:
            await local.start(remote_app.counter, 0, id="sws")
            # Without a delivery id a second send would be a second signal: an error.
            proxy.drop = b"POST /v1/signal-with-start"
            with pytest.raises(ServerUnavailableError):
                await remote.signal_with_start(remote_app.counter, 0, id="sws",
                                               signal="inc", payload=1)
            # With one, sent again: the same signal, recorded once.
            proxy.drop = b"POST /v1/signal-with-start"
            await remote.signal_with_start(remote_app.counter, 0, id="sws", signal="inc",
                                           payload=1, signal_id="delivery-1")
            assert proxy.dropped == 2
            await asyncio.sleep(0.3)
            assert _signals(await local.get_handle("sws").history()) == 2  # one each

            # A cancel whose answer was lost: asked again, the run it cancelled is done.
            handle = await local.start(remote_app.counter, 0, id="can")
            proxy.drop = b"POST /v1/runs/can/cancel"
            await remote.cancel("can")
            assert proxy.dropped == 3
            with pytest.raises(duro.WorkflowCancelledError):
                await handle.result(timeout=20)

            # A start without an id: the client's own resend is the same start.
            proxy.drop = b"POST /v1/runs "
            started = await remote.start(remote_app.counter, 0)
            assert proxy.dropped == 4
            runs = [r for r in await local.list(limit=100)
                    if r.workflow_id == started.workflow_id]
            assert len(runs) == 1
        proxy.server.close()

    run(asyncio.wait_for(body(), 120))


def test_a_start_that_got_no_answer_names_the_id_it_was_given() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def body() -> None:
        async with duro.Client(f"http://127.0.0.1:{port}") as remote:
            with pytest.raises(ServerUnavailableError) as lost:
                await remote.start(remote_app.counter, 0)
            assert lost.value.workflow_id is not None
            assert lost.value.workflow_id in str(lost.value)
            with pytest.raises(ServerUnavailableError) as named:
                await remote.start(remote_app.counter, 0, id="mine")
            assert named.value.workflow_id is None  # the caller has it

    run(body())


def test_waits_outlast_a_restart_and_never_their_timeout(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/duro.db"
    with serve(db_url, "remote_app", "--worker") as first:
        port = int(first.url.rsplit(":", 1)[1])

        async def body() -> None:
            async with duro.Client(first.url) as remote:
                handle = await remote.start(remote_app.counter, 0, id="long")
                waiting = asyncio.ensure_future(handle.result(timeout=60))
                await asyncio.sleep(0.5)
                first.proc.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(first.proc.wait, 30) == 0
                await asyncio.sleep(1.0)  # down for a while
                again = serve(db_url, "remote_app", "--worker", port=port)
                await asyncio.to_thread(again.__enter__)
                try:
                    await remote.signal("long", "stop", id="stop")
                    assert await asyncio.wait_for(waiting, 60) == {"total": 0, "signals": 0}
                finally:
                    await asyncio.to_thread(again.__exit__, None, None, None)

        run(body())


def _hung_server() -> tuple[socket.socket, str]:
    """A socket that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_server_that_hangs_holds_no_wait_past_its_timeout() -> None:
    sock, url = _hung_server()

    async def body() -> None:
        async with duro.Client(url, timeout=5) as remote:
            handle = remote.get_handle("x")
            for wait, error in ((handle.result(timeout=1), TimeoutError),
                                (remote.update("x", "add", 1, timeout=1), TimeoutError),
                                # Not a long wait: no answer is the server's, as always.
                                (remote.query("x", "n", timeout=1), ServerUnavailableError)):
                started = time.monotonic()
                with pytest.raises(error):
                    await wait
                assert time.monotonic() - started < 4  # its timeout, plus a second or so

    try:
        run(body())
    finally:
        sock.close()


class _Redirect(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.send_response(308)
        self.send_header("Location", "https://elsewhere.invalid" + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer


class _Page(_Redirect):
    def _answer(self) -> None:
        body = b"<html>a login page</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.mark.parametrize(("handler", "said"), [(_Redirect, "redirects"),
                                               (_Page, "not JSON")])
def test_an_answer_no_duro_server_gives_is_a_duro_error(
        handler: type[BaseHTTPRequestHandler], said: str) -> None:
    http = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{http.server_address[1]}"

    async def body() -> None:
        async with duro.Client(url) as remote:
            for call in (remote.start(remote_app.counter, 0, id="r"),
                         remote.get_handle("r").describe()):
                with pytest.raises(duro.DuroError, match=said):
                    await call

    try:
        run(body())
    finally:
        http.shutdown()
        http.server_close()
