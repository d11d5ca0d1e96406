"""``duro serve`` as a real process for the HTTP tests: on a free loopback port, with the
test apps importable, stopped (kill) when the test ends."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

import duro

APPS = Path(__file__).parent / "apps"
DURO_SRC = Path(duro.__file__).resolve().parents[1]
READY = re.compile(r"duro serve ready: http://127\.0\.0\.1:(\d+)")

__all__ = ["APPS", "Served", "problem", "serve", "serve_http", "sse_messages"]


class Served:
    """A running ``duro serve``: its base URL, process, and what it printed after its
    ready line (read as it comes, so that a chatty server never blocks on a full pipe)."""

    def __init__(self, url: str, proc: subprocess.Popen[str]) -> None:
        self.url = url
        self.proc = proc
        self.ready_line = ""
        self.output: list[str] = []
        self.reader = threading.Thread(target=self.drain, daemon=True)

    def printed(self) -> str:
        """What the server printed after its ready line, once it has exited."""
        self.reader.join(timeout=30)
        return "".join(self.output)

    def drain(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self.proc.stdout:
                self.output.append(line)


@contextlib.contextmanager
def serve(db_url: str, *args: str, env: Mapping[str, str] | None = None,
          port: int = 0) -> Iterator[Served]:
    """Start ``duro --db DB_URL serve ARGS --port PORT`` (a free one by default) and wait
    for its ready line."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DURO_DB", "PYTHONPATH")}
    environ["PYTHONPATH"] = os.pathsep.join([str(APPS), str(DURO_SRC)])
    environ.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", db_url, "serve", *args, "--port", str(port)],
        env=environ, cwd=APPS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the ready line (or why it did not start)
    match = READY.search(line)
    if match is None:
        proc.kill()
        pytest.fail(f"duro serve did not start: {line}{proc.stdout.read()}")
    served = Served(f"http://127.0.0.1:{match.group(1)}", proc)
    served.ready_line = line
    served.reader.start()
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        served.reader.join(timeout=10)
        proc.stdout.close()


@contextlib.contextmanager
def serve_http(db_url: str, *modules: str, worker: bool = True, args: Sequence[str] = (),
               env: Mapping[str, str] | None = None
               ) -> Iterator[tuple[httpx.Client, Served]]:
    """``duro serve MODULES [--worker] ARGS`` on ``db_url``, and an HTTP client to it."""
    with serve(db_url, *modules, *(["--worker"] if worker else []), *args,
               env=env) as served, httpx.Client(base_url=served.url, timeout=30) as http:
        yield http, served


def problem(response: httpx.Response, status: int, code: str) -> str:
    """The detail of a problem response, once its status and code are checked."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    return str(body["detail"])


def sse_messages(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """The messages of an event stream (a dict of its fields; comments skipped)."""
    message: dict[str, str] = {}
    for line in lines:
        if not line:
            if message:
                yield message
            message = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            message[key] = value.removeprefix(" ")
