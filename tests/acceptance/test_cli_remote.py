"""``duro --url http://...``: the CLI's client commands act through a real ``duro serve``
process instead of the database (issue 16); the commands that need the database refuse
``--url``, and ``--url`` with ``--db`` is a usage error."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import duro
from tests.acceptance.serving import APPS, serve
from tests.conftest import run

TIMEOUT = 60


def duro_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DURO_DB", "DURO_URL", "DURO_TOKEN")}
    environ.update(NO_COLOR="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "duro", *args], capture_output=True,
                          text=True, cwd=APPS, env=environ, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    db_url = f"sqlite:///{tmp_path_factory.mktemp('cli-remote')}/duro.db"
    with serve(db_url, "remote_app", "--worker") as server:
        yield db_url, server.url


def _start(url: str, workflow_id: str) -> None:
    async def body() -> None:
        async with duro.Client(url) as client:
            await client.start("remote_app.counter", 1, id=workflow_id)

    run(body())


def _wait_cancelled(url: str, workflow_id: str) -> None:
    async def body() -> None:
        async with duro.Client(url) as client:
            with pytest.raises(duro.WorkflowCancelledError):
                await client.get_handle(workflow_id).result(timeout=20)

    run(body())


def test_client_commands_act_through_the_server(served: tuple[str, str]) -> None:
    _, url = served
    _start(url, "cli-1")
    listed = duro_cli("--url", url, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "cli-1" in [r["workflow_id"] for r in json.loads(listed.stdout)]

    signalled = duro_cli("--url", url, "signal", "cli-1", "inc", "2")
    assert signalled.returncode == 0, signalled.stderr
    assert "signal 'inc' sent to cli-1" in signalled.stdout
    # No --module: the server's worker answers from its code.
    asked = duro_cli("--url", url, "query", "cli-1", "total")
    assert (asked.returncode, asked.stdout.strip()) == (0, "3"), asked.stderr
    updated = duro_cli("--url", url, "update", "cli-1", "add", "4")
    assert (updated.returncode, updated.stdout.strip()) == (0, "7"), updated.stderr

    shown = duro_cli("show", "cli-1", "--json", env={"DURO_URL": url})  # from $DURO_URL
    assert shown.returncode == 0, shown.stderr
    described = json.loads(shown.stdout)
    assert described["workflow_name"] == "remote_app.counter"
    assert described["children"] == []  # none started
    text = duro_cli("--url", url, "show", "cli-1")
    assert text.returncode == 0 and "remote_app.counter" in text.stdout, text.stderr

    cancelled = duro_cli("--url", url, "cancel", "cli-1")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancel requested for cli-1" in cancelled.stdout
    _wait_cancelled(url, "cli-1")
    again = duro_cli("--url", url, "cancel", "cli-1")
    assert again.returncode == 1 and "already ended (cancelled)" in again.stderr
    history = duro_cli("--url", url, "history", "cli-1", "--json")
    assert history.returncode == 0, history.stderr
    kinds = [e["kind"] for e in json.loads(history.stdout)]
    assert kinds[:2] == ["run_started", "signal_received"] and kinds[-1] == "run_cancelled"
    queues = duro_cli("--url", url, "queues", "--json")
    assert queues.returncode == 0, queues.stderr
    missing = duro_cli("--url", url, "show", "nosuch")
    assert missing.returncode == 1 and "no run with workflow id 'nosuch'" in missing.stderr


def test_what_refuses_a_server(served: tuple[str, str]) -> None:
    db_url, url = served
    both = duro_cli("--url", url, "--db", db_url, "ls")
    assert both.returncode == 2 and "--url and --db are exclusive" in both.stderr
    for command in (["worker", "remote_app"], ["token", "ls"], ["db", "migrate"],
                    ["run", "remote_app:greet", "x"]):
        refused = duro_cli("--url", url, *command)
        assert refused.returncode == 2, (command, refused.stderr)
        assert f"duro {command[0]} " in refused.stderr and "needs the database" in \
            refused.stderr
    not_http = duro_cli("--url", db_url, "ls")
    assert not_http.returncode == 2 and "http://" in not_http.stderr
    codec = duro_cli("--url", url, "--codec", "codec_app:chain", "ls")
    assert codec.returncode == 2 and "--codec" in codec.stderr
    # $DURO_URL does not override an explicit --db.
    local = duro_cli("--db", db_url, "ls", "--json", env={"DURO_URL": "http://nowhere:1"})
    assert local.returncode == 0, local.stderr


def test_a_server_that_is_down_is_a_store_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = duro_cli("--url", f"http://127.0.0.1:{port}", "ls")
    assert down.returncode == 4, down.stderr
    assert "no answer from" in down.stderr


def test_the_token_of_the_cli(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/duro.db"

    async def token() -> str:
        async with duro.Client(db_url) as client:
            secret, _ = await client.tokens.create("cli", scope="read")
        return secret

    secret = run(token())
    with serve(db_url, "remote_app", "--worker", "--auth") as server:
        given = duro_cli("--url", server.url, "--token", secret, "ls")
        assert given.returncode == 0 and "no runs" in given.stdout, given.stderr
        from_env = duro_cli("ls", env={"DURO_URL": server.url, "DURO_TOKEN": secret})
        assert from_env.returncode == 0, from_env.stderr
        refused = duro_cli("--url", server.url, "ls")
        assert refused.returncode == 1 and "AuthenticationError" in refused.stderr


def test_published_state_through_the_server(served: tuple[str, str]) -> None:
    _, url = served

    async def body() -> None:
        async with duro.Client(url) as client:
            handle = await client.start("remote_app.family", 1, id="cli-family")
            assert await handle.wait_state("progress", timeout=20) is not None
            for _ in range(200):  # bounded: one child, milliseconds
                if await handle.get_state("progress") == {"children": 1}:
                    return
                await asyncio.sleep(0.05)

    run(body())
    one = duro_cli("--url", url, "state", "cli-family", "progress", "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == {"children": 1}
    every = duro_cli("--url", url, "state", "cli-family", "--json")
    assert json.loads(every.stdout) == {"progress": {"children": 1}}
    missing = duro_cli("--url", url, "state", "cli-family", "nope")
    assert missing.returncode == 1 and "has not published 'nope'" in missing.stderr
    shown = json.loads(duro_cli("--url", url, "show", "cli-family", "--json").stdout)
    assert [c["workflow_name"] for c in shown["children"]] == ["remote_app.greet"]
