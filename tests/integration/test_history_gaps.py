"""A history with an event missing is found, not silently re-run: the run is parked with
a HistoryCorruptError saying what is missing, and its step does not run again."""

from __future__ import annotations

import asyncio

import pytest

import duro
from tests.conftest import run, wait_until
from tests.faults import _pg
from tests.integration.test_write_faults import history_seqs

EXECUTED: list[int] = []


@duro.step(name="gaps.work")
async def work(i: int) -> int:
    EXECUTED.append(i)
    return i


@duro.workflow(name="gaps.two_steps_and_a_nap")
async def two_steps_and_a_nap() -> int:
    a = await work(1)
    b = await work(2)
    await asyncio.sleep(3600)
    return a + b


def _delete_event(url: str, workflow_id: str, seq: int) -> None:
    sql = ("DELETE FROM events WHERE seq = {p} AND run_id = "
           "(SELECT run_id FROM runs WHERE workflow_id = {p})")
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            conn.execute(sql.format(p="?"), (seq, workflow_id))
        return
    with _pg(url) as conn:
        conn.execute(sql.format(p="%s"), (seq, workflow_id))


@pytest.mark.parametrize("which", ["middle", "last"])
def test_a_deleted_history_event_parks_the_run(any_db_url: str, which: str) -> None:
    EXECUTED.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url, lookahead=0) as engine:
            handle = await engine.start(two_steps_and_a_nap, id="gappy")

            async def asleep() -> bool:
                return (await handle.status()).value == "suspended"

            await wait_until(asleep, timeout=10)
        seqs = history_seqs(any_db_url, "gappy")
        assert seqs == [0, 1, 2], seqs
        _delete_event(any_db_url, "gappy", 1 if which == "middle" else 2)
        EXECUTED.clear()
        async with duro.Engine(any_db_url, lookahead=0) as engine:
            handle = engine.get_handle("gappy")
            await engine.cancel("gappy")  # wakes it: the worker takes it up and replays

            async def parked() -> bool:
                return (await handle.status()).value == "parked"

            await wait_until(parked, timeout=10)
            info = await handle.describe()
            assert info.error is not None and info.error.type == "HistoryCorruptError"
            assert "missing" in info.error.message
        assert EXECUTED == []  # nothing ran again

    run(main())
