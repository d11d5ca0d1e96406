"""``duro serve`` under faults (issue 16): a webhook storm (one signal-with-start
delivered 100 times at once) and a kill -9 while 200 starts are in flight, then clients
retrying with the same ids. Both stores, real server processes, real HTTP."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
import orjson

import duro
from duro._history import EventKind, SignalMeta
from tests.acceptance.serving import serve
from tests.conftest import run


async def _runs_and_signals(url: str, prefix: str) -> tuple[Counter[str],
                                                            Counter[str | None]]:
    """Runs by workflow id under ``prefix``, and the delivery ids of their signals."""
    runs: Counter[str] = Counter()
    ids: Counter[str | None] = Counter()
    async with duro.Client(url) as client:
        for record in await client.store.list_runs(id_prefix=prefix, limit=1000):
            runs[record.workflow_id] += 1
            for event in await client.store.load_history(record.run_id):
                if event.kind == EventKind.SIGNAL_RECEIVED:
                    ids[SignalMeta.decode(event.meta).id] += 1
    return runs, ids


def test_webhook_storm_one_run_one_signal_per_delivery(any_db_url: str) -> None:
    """10 distinct deliveries x 10 repeats, all 100 at once, to signal-with-start:
    every response 202, one run, one signal per delivery id."""

    async def storm(base: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            return list(await asyncio.gather(*(
                http.post("/v1/signal-with-start", json={
                    "workflow": "hooks_app.collect", "id": "storm", "args": [10],
                    "signal": "event", "payload": {"delivery": d}},
                    headers={"Duro-Signal-Id": f"delivery-{d}"})
                for _ in range(10) for d in range(10))))

    with serve(any_db_url, "hooks_app", "--worker") as served:
        responses = run(storm(served.url))
        assert [r.status_code for r in responses] == [202] * 100, \
            [r.text for r in responses if r.status_code != 202][:3]
        assert {r.json()["workflow_id"] for r in responses} == {"storm"}
        assert len({r.json()["run_id"] for r in responses}) == 1
        with httpx.Client(base_url=served.url, timeout=30) as http:
            done = http.get("/v1/runs/storm/result", params={"wait": "30"})
        assert done.status_code == 200, done.text
        assert sorted(p["delivery"] for p in done.json()["result"]) == list(range(10))
    runs, ids = run(_runs_and_signals(any_db_url, "storm"))
    assert runs == {"storm": 1}
    assert ids == {f"delivery-{d}": 1 for d in range(10)}


def test_kill_9_with_200_starts_in_flight_then_retries(any_db_url: str) -> None:
    """200 starts (ids s-0..s-199) in flight: half sent whole, half with their bodies held
    halfway (so that some are surely inside the server, unfinished, at the kill); SIGKILL
    once 20 have been answered. Restarted, the clients retry every start with its id:
    each id has exactly one run, and a start answered before the kill is the same run
    after."""
    ids = [f"s-{i}" for i in range(200)]

    async def first_wave(base: str, kill: Callable[[], None]) -> dict[str, str]:
        answered: dict[str, str] = {}
        released = asyncio.Event()
        limits = httpx.Limits(max_connections=200)

        async def held(body: bytes) -> AsyncIterator[bytes]:
            yield body[:10]
            await released.wait()  # set once the server is dead
            yield body[10:]

        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:

            async def start(n: int, workflow_id: str) -> None:
                body = orjson.dumps({"workflow": "hooks_app.noop", "id": workflow_id,
                                     "args": [n]})
                try:
                    got = await http.post("/v1/runs", content=held(body) if n % 2 else body,
                                          headers={"Content-Type": "application/json"})
                except httpx.TransportError:
                    return  # cut off by the kill: retried below
                assert got.status_code == 202, got.text
                answered[workflow_id] = got.json()["run_id"]
                if len(answered) == 20:
                    kill()
                    released.set()

            await asyncio.gather(*(start(n, i) for n, i in enumerate(ids)))
        return answered

    async def retry_all(base: str) -> dict[str, str]:
        out: dict[str, str] = {}
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for batch in range(0, len(ids), 50):
                got = await asyncio.gather(*(
                    http.post("/v1/runs", json={"workflow": "hooks_app.noop", "id": i,
                                                "args": [batch + n]})
                    for n, i in enumerate(ids[batch:batch + 50])))
                for workflow_id, response in zip(ids[batch:batch + 50], got, strict=True):
                    assert response.status_code == 202, response.text
                    out[workflow_id] = response.json()["run_id"]
        return out

    with serve(any_db_url) as served:

        def kill() -> None:
            served.proc.send_signal(signal.SIGKILL)
            assert served.proc.wait(timeout=30) == -signal.SIGKILL

        answered = run(first_wave(served.url, kill))
    assert 20 <= len(answered) <= 100  # the held half, at least, was cut off
    with serve(any_db_url) as again:
        retried = run(retry_all(again.url))
    assert set(retried) == set(ids)
    for workflow_id, run_id in answered.items():
        assert retried[workflow_id] == run_id, workflow_id
    runs, _ = run(_runs_and_signals(any_db_url, "s-"))
    assert runs == dict.fromkeys(ids, 1)
