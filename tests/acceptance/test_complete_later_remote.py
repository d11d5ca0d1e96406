"""Steps completed from outside through ``duro serve`` (``/v1/steps/{token}/...``, the
remote client's ``client.steps``) and the ``duro step`` command; refusals typed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import duro
from tests.acceptance.serving import APPS, problem, serve, serve_http
from tests.conftest import run, wait_until


async def _token_of(client: duro.Client, wid: str) -> str:
    handle = client.get_handle(wid)

    async def waiting() -> bool:
        kinds = [e.kind for e in await handle.history()]
        return "step_started" in kinds

    await wait_until(waiting, timeout=20)
    return f"{(await handle.describe()).run_id}.1.1"  # the first step's first attempt


def _cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    return subprocess.run([sys.executable, "-m", "duro", "--db", db, *args], cwd=APPS,
                          env=env, capture_output=True, text=True, timeout=60)


def test_steps_completed_through_the_server_and_the_cli(tmp_path: object) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    with serve(db, "complete_app", "--worker") as served:

        async def main() -> None:
            async with duro.Client(served.url) as client:
                await client.start("complete_app.flow", "a", id="ra")
                token = await _token_of(client, "ra")
                with pytest.raises(duro.InvalidArgumentError, match="token"):
                    await client.steps.complete("nope", 1)
                with pytest.raises(duro.RunNotFoundError):
                    await client.steps.complete("no-run.1.1", 1)
                await client.steps.heartbeat(token, {"at": 1})
                await client.steps.complete(token, "approved")
                assert await client.get_handle("ra").result(timeout=20) == "a: approved"
                await client.start("complete_app.flow", "b", id="rb")
                token_b = await _token_of(client, "rb")
                # The command line, on the database.
                done = _cli(db, "step", "fail", token_b, "no reviewer", "--non-retryable")
                assert done.returncode == 0, done.stderr
                assert "failed step attempt" in done.stdout
                assert await client.get_handle("rb").result(timeout=20) == \
                    "b failed: ExternalError: no reviewer"
                bad = _cli(db, "step", "complete", "x.y.z", "1")
                assert bad.returncode == 2 and "token" in bad.stderr

        run(main(), timeout=90)


def test_the_step_routes_refuse_bad_bodies(tmp_path: object) -> None:
    db = f"sqlite:///{tmp_path}/h.db"
    with serve_http(db, "complete_app") as (http, _):
        problem(http.post("/v1/steps/nope/complete", json={"result": 1}), 400,
                "invalid_argument")
        problem(http.post("/v1/steps/r.1.1/fail", json={}), 400, "bad_request")
        problem(http.post("/v1/steps/r.1.1/complete", json={"other": 1}), 400, "bad_request")
        problem(http.post("/v1/steps/r.1.1/complete", json={"result": 1}), 404,
                "run_not_found")
