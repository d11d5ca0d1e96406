"""Human approvals decided from another process (issue 17, item 5), both stores: the
workflow waits in this process's worker while ``duro approve`` / ``duro reject`` run as
subprocesses, and while a real ``duro serve`` (no worker) takes the decision over HTTP
(``/v1/approvals``) — without tokens, with tokens (the token's name is the decider), and
through the remote client. The history records who decided and when."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

import duro
from duro._history import DecisionMeta, EventKind
from duro.errors import ApprovalNotPendingError
from tests.acceptance.serving import problem, serve_http
from tests.conftest import run, wait_until

APP = Path(__file__).parent / "apps" / "approval_app.py"


@duro.workflow(name="approvals_remote.release")
async def release(version: str) -> dict[str, Any]:
    decision = await duro.approval("release", {"version": version})
    return {"approved": decision.approved, "by": decision.by, "comment": decision.comment}


def _duro(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "duro", "--db", url, *args],
                          capture_output=True, text=True, timeout=60)


async def _pending_id(client: duro.Client, workflow_id: str) -> str:
    found: list[duro.ApprovalInfo] = []

    async def listed() -> bool:
        nonlocal found
        found = (await client.approvals.list(workflow_id=workflow_id)).approvals
        return bool(found)

    await wait_until(listed, timeout=15)
    return found[0].approval_id


async def _audit(client: duro.Client, run_id: str) -> DecisionMeta:
    [event] = [e for e in await client.store.load_history(run_id)
               if e.kind == EventKind.APPROVAL_DECIDED]
    return DecisionMeta.decode(event.meta)


def test_decided_by_the_cli_in_another_process(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(release, "1.2", id="cli-release")
            approval_id = await _pending_id(engine, "cli-release")
            listed = await _run_cli(any_db_url, "approvals", "--json")
            assert listed.returncode == 0, listed.stderr
            [row] = json.loads(listed.stdout)
            assert row["approval_id"] == approval_id and row["context"] == {"version": "1.2"}
            table = await _run_cli(any_db_url, "approvals")
            assert approval_id in table.stdout and "release" in table.stdout
            done = await _run_cli(any_db_url, "approve", approval_id, "--comment", "lgtm")
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith(f"approved {approval_id}")
            result = await handle.result(timeout=15)
            assert result == {"approved": True, "by": getpass.getuser(), "comment": "lgtm"}
            audit = await _audit(engine, handle.run_id)
            assert audit.by == getpass.getuser() and audit.at > 0
            history = await _run_cli(any_db_url, "history", "cli-release")
            assert f"approved by {getpass.getuser()}: lgtm" in history.stdout
            again = await _run_cli(any_db_url, "reject", approval_id, "--by", "mallory")
            assert again.returncode == 1 and "approved already" in again.stderr
            unknown = await _run_cli(any_db_url, "approve", "no-such.1")
            assert unknown.returncode == 1 and "no approval" in unknown.stderr
            empty = await _run_cli(any_db_url, "approvals")
            assert empty.stdout.strip() == "no pending approvals"
            every = json.loads((await _run_cli(any_db_url, "approvals", "--all",
                                               "--json")).stdout)
            assert [a["status"] for a in every] == ["approved"]

    run(main())


async def _run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, off this event loop (the worker here keeps running)."""
    import asyncio

    return await asyncio.to_thread(_duro, url, *args)


def test_decided_over_http_by_a_real_server(any_db_url: str) -> None:
    """``duro serve`` (no worker) lists and decides; this process's worker runs the
    workflow; refusals are problem documents with stable codes."""
    with serve_http(any_db_url, worker=False) as (http, _):
        async def main() -> None:
            async with duro.Engine(any_db_url) as engine:
                handle = await engine.start(release, "2.0", id="http-release")
                approval_id = await _pending_id(engine, "http-release")
                page = (await _get(http, "/v1/approvals")).json()
                assert [a["approval_id"] for a in page["approvals"]] == [approval_id]
                assert page["next_cursor"] is None
                one = (await _get(http, f"/v1/approvals/{approval_id}")).json()
                assert one["status"] == "pending" and one["context"] == {"version": "2.0"}
                decided = await _post(http, f"/v1/approvals/{approval_id}/reject",
                                      {"by": "carol", "comment": "tests fail"})
                assert decided.status_code == 200, decided.text
                assert decided.json()["status"] == "rejected"
                result = await handle.result(timeout=15)
                assert result == {"approved": False, "by": "carol", "comment": "tests fail"}
                assert (await _audit(engine, handle.run_id)).by == "carol"
                second = await _post(http, f"/v1/approvals/{approval_id}/approve", {})
                assert "rejected already" in problem(second, 409, "approval_not_pending")
                assert second.json()["approval_status"] == "rejected"
                problem(await _post(http, "/v1/approvals/nope.3/approve", {}), 404,
                        "approval_not_found")
                problem(await _post(http, f"/v1/approvals/{approval_id}/approve",
                                    {"by": "x", "extra": 1}), 400, "bad_request")
                problem(await _get(http, "/v1/approvals?status=maybe"), 400,
                        "invalid_argument")
                every = (await _get(http, "/v1/approvals?status=all")).json()
                assert [a["status"] for a in every["approvals"]] == ["rejected"]

        run(main())


def test_with_tokens_the_token_decides_and_the_remote_client_works(any_db_url: str) -> None:
    async def tokens() -> tuple[str, str]:
        async with duro.Client(any_db_url) as client:
            write, _ = await client.tokens.create("release-bot", scope="write")
            read, _ = await client.tokens.create("viewer", scope="read")
            return write, read

    write, read = run(tokens())
    with serve_http(any_db_url, worker=False, args=["--auth"]) as (http, _):
        async def main() -> None:
            async with duro.Engine(any_db_url) as engine:
                handle = await engine.start(release, "3.0", id="token-release")
                approval_id = await _pending_id(engine, "token-release")
                url = str(http.base_url).rstrip("/")
                async with duro.Client(url, token=read) as viewer:
                    [seen] = (await viewer.approvals.list()).approvals
                    assert seen.approval_id == approval_id
                    assert (await viewer.approvals.get(approval_id)).status == "pending"
                async with duro.Client(url, token=write) as bot:
                    try:
                        await bot.approvals.approve(approval_id, by="somebody else")
                        raise AssertionError("a token signed for someone else")
                    except duro.InvalidArgumentError as exc:
                        assert "release-bot" in str(exc)
                    decided = await bot.approvals.approve(approval_id, comment="auto")
                    assert decided.decided_by == "release-bot"
                    try:
                        await bot.approvals.reject(approval_id)
                        raise AssertionError("decided twice")
                    except ApprovalNotPendingError as exc:
                        assert exc.status == "approved"
                result = await handle.result(timeout=15)
                assert result == {"approved": True, "by": "release-bot", "comment": "auto"}

        run(main())


async def _get(http: httpx.Client, path: str) -> httpx.Response:
    import asyncio

    return await asyncio.to_thread(http.get, path)


async def _post(http: httpx.Client, path: str, body: Any) -> httpx.Response:
    import asyncio

    return await asyncio.to_thread(http.post, path, json=body)


def test_kill_9_while_waiting_then_decided_with_no_worker(tmp_path: Path) -> None:
    """The worker process is killed (SIGKILL) while its run waits for the approval; the
    approval stays pending; it is decided while no worker runs; a new worker process
    delivers the decision, and the step before the approval did not run again."""
    url = f"sqlite:///{tmp_path}/crash.db"

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(APP), url], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])

    async def main() -> None:
        async with duro.Client(url) as client:
            handle = await client.start("approval_app.ship", "9.9", id="crash-ship")
            proc = spawn()
            try:
                approval_id = await _pending_id(client, "crash-ship")
                proc.kill()
                proc.wait(timeout=10)
                [still] = (await client.approvals.list()).approvals
                assert still.approval_id == approval_id
                assert still.context == {"plan": "plan for 9.9"}
                await client.approvals.approve(approval_id, by="on call")
                proc = spawn()
                result = await handle.result(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
            assert result == "plan for 9.9, applied (on call)"
            events = await client.store.load_history(handle.run_id)
            steps = [e.name for e in events if e.kind == EventKind.STEP_COMPLETED]
            assert steps == ["approval_app.prepare", "approval_app.apply"]
            assert [e.kind for e in events].count(EventKind.APPROVAL_DECIDED) == 1

    run(main(), timeout=120)
