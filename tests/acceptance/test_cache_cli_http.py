"""The durable step cache from outside: ``duro cache ls|clear`` (a subprocess, on the
database and through ``--url``), ``GET``/``DELETE /v1/cache`` on a real ``duro serve``,
and the remote client's ``cache``; bad filters are refused and delete nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

import duro
from tests.acceptance.serving import DURO_SRC, problem, serve
from tests.conftest import run
from tests.integration.test_step_cache import flow, flow_tenant


def _duro(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(DURO_SRC)}
    env.pop("DURO_DB", None)
    return subprocess.run([sys.executable, "-m", "duro", *args], capture_output=True,
                          text=True, timeout=60, env=env)


async def _fill(url: str) -> None:
    async with duro.Engine(url, poll_interval=0.02) as engine:
        for i, tenant in enumerate(["acme", "globex"]):
            h = await engine.start(flow_tenant, "p", id=f"t{i}", headers={"tenant": tenant})
            await h.result(timeout=10)
        for prompt in ("a", "b"):
            h = await engine.start(flow, prompt, id=f"g-{prompt}")
            await h.result(timeout=10)


def _counts(rows: list[dict[str, object]]) -> dict[tuple[object, object], object]:
    return {(r["step"], r["scope"]): r["entries"] for r in rows}


def test_cli_lists_and_clears(any_db_url: str) -> None:
    url = any_db_url
    run(_fill(url))
    proc = _duro("--db", url, "cache", "ls", "--json")
    assert proc.returncode == 0, proc.stderr
    assert _counts(json.loads(proc.stdout)) == {
        ("sc.ask", ""): 2, ("sc.tenant", "acme"): 1, ("sc.tenant", "globex"): 1}
    table = _duro("--db", url, "cache", "ls").stdout
    assert "sc.tenant" in table and "(global)" in table and "ENTRIES" in table
    assert _duro("--db", url, "cache", "ls", "--step", "").returncode != 0  # refused
    proc = _duro("--db", url, "cache", "clear", "--step", "sc.tenant", "--scope", "acme")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "deleted 1 cached result"
    proc = _duro("--db", url, "cache", "clear", "--scope", "", "--json")
    assert json.loads(proc.stdout) == {"deleted": 2}
    assert _counts(json.loads(_duro("--db", url, "cache", "ls", "--json").stdout)) == {
        ("sc.tenant", "globex"): 1}
    assert _duro("--db", url, "cache", "clear").stdout.strip() == "deleted 1 cached result"
    assert _duro("--db", url, "cache", "ls").stdout.strip() == "no cached results"


def test_http_routes_and_the_remote_client(any_db_url: str) -> None:
    url = any_db_url
    run(_fill(url))
    with serve(url) as served, httpx.Client(base_url=served.url, timeout=30) as http:
        got = http.get("/v1/cache")
        assert got.status_code == 200
        assert _counts(got.json()["entries"]) == {
            ("sc.ask", ""): 2, ("sc.tenant", "acme"): 1, ("sc.tenant", "globex"): 1}
        assert _counts(http.get("/v1/cache", params={"step": "sc.tenant"})
                       .json()["entries"]) == {("sc.tenant", "acme"): 1,
                                               ("sc.tenant", "globex"): 1}
        for bad in ({"step": ""}, {"scope": "x" * 201}, {"expired": "maybe"}):
            problem(http.delete("/v1/cache", params=bad), 400, "invalid_argument")
        assert len(http.get("/v1/cache").json()["entries"]) == 3  # nothing deleted
        got = http.delete("/v1/cache", params={"step": "sc.tenant", "scope": "acme"})
        assert got.status_code == 200 and got.json() == {"deleted": 1}
        assert http.delete("/v1/cache", params={"expired": "true"}).json() == {"deleted": 0}

        async def remote() -> None:
            async with duro.Client(served.url) as client:
                listed = await client.cache.list()
                assert {(i.step, i.scope) for i in listed} == {("sc.ask", ""),
                                                              ("sc.tenant", "globex")}
                assert await client.cache.invalidate(scope="") == 2
                assert [i.scope for i in await client.cache.list()] == ["globex"]

        run(remote())
        proc = _duro("--url", served.url, "cache", "clear", "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"deleted": 1}
        assert http.get("/v1/cache").json() == {"entries": []}
