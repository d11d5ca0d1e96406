"""A write that fails inside a group-commit batch loses nothing and wedges nothing.

Faults are injected in the database (tests/faults.py: a trigger that makes chosen event
inserts fail), so they strike inside the store writer's transaction exactly where a real
one would, on both stores.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest

import duro
from duro.errors import StoreError
from duro.store import Fenced, NewEvent, Store, open_store
from tests.conftest import run, wait_until
from tests.faults import install_fault, set_fault


@duro.step(name="faults.quick")
async def quick(i: int) -> int:
    await asyncio.sleep(0.01)
    return i


@duro.workflow(name="faults.fan")
async def fan(n: int) -> list[int]:
    return list(await asyncio.gather(*(quick(i) for i in range(n))))


@duro.workflow(name="faults.chain")
async def chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += await quick(i)
    return total


def history_seqs(url: str, workflow_id: str) -> list[int]:
    """The stored sequence numbers of a run's history (read straight from the database)."""
    sql = ("SELECT e.seq FROM events e JOIN runs r ON r.run_id = e.run_id "
           "WHERE r.workflow_id = {p} ORDER BY e.seq")
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            return [r[0] for r in conn.execute(sql.format(p="?"), (workflow_id,))]
    from tests.faults import _pg

    with _pg(url) as conn:
        return [r[0] for r in conn.execute(sql.format(p="%s"), (workflow_id,))]


def test_a_failed_write_never_lets_a_later_write_of_the_run_commit(any_db_url: str) -> None:
    """Three steps finish together; the first outcome's insert fails. Before the fix the
    other two committed past it: a gap in the history, and the run stuck for good."""
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            assert engine.worker is not None
            install_fault(any_db_url, "NEW.kind = 'step_completed' AND NEW.seq = 1")
            handle = await engine.start(fan, 3, id="fan")
            # Several rounds of: all three run, the first to finish fails to record.
            await wait_until(lambda: engine.worker.steps_executed >= 9, timeout=20)
            set_fault(any_db_url, False)
            assert await handle.result(timeout=20) == [0, 1, 2]
        seqs = history_seqs(any_db_url, "fan")
        assert seqs == list(range(len(seqs))), f"gap in the history: {seqs}"

    run(main())


def test_the_writer_keeps_working_after_a_database_error(any_db_url: str) -> None:
    """After one failed batch every later write must still go through (on PostgreSQL a
    failed pipeline used to leave psycopg believing in prepared statements the server
    never made: 'prepared statement "_pg3_N" does not exist' on every write after)."""
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            install_fault(any_db_url, "NEW.kind = 'step_completed' AND NEW.seq = 12",
                          on=False)
            # Warm up: psycopg prepares a statement after it ran a few times.
            warm = [await engine.start(chain, 10, id=f"warm-{i}") for i in range(3)]
            for h in warm:
                assert await h.result(timeout=20) == 45
            set_fault(any_db_url, True)
            victim = await engine.start(chain, 20, id="victim")
            await wait_until(lambda: _has_run_past(engine, "victim", 11), timeout=20)
            await asyncio.sleep(0.3)  # the fault fires, the run is retried meanwhile
            set_fault(any_db_url, False)
            assert await victim.result(timeout=20) == sum(range(20))
            after = [await engine.start(chain, 10, id=f"after-{i}") for i in range(3)]
            for h in after:
                assert await h.result(timeout=20) == 45
        seqs = history_seqs(any_db_url, "victim")
        assert seqs == list(range(len(seqs)))

    run(main())


async def _history_len(engine: duro.Engine, workflow_id: str) -> int:
    return len(await engine.get_handle(workflow_id).history())


def _has_run_past(engine: duro.Engine, workflow_id: str, n: int) -> Any:
    async def check() -> bool:
        return await _history_len(engine, workflow_id) >= n

    return check()


def _event(op: int, name: str = "s") -> NewEvent:
    return NewEvent(kind="step_completed", ts=101.0, op=op, name=name, data=b"1")


async def _owned_run(store: Store, workflow_id: str) -> str:
    record, _ = await store.create_run(
        run_id=f"run-{workflow_id}", workflow_id=workflow_id, workflow_name="wf",
        input=b'{"args":[]}', now=100.0, owner="w1", on_conflict="fail",
        on_reuse="allow")
    return record.run_id


def test_a_failed_batch_leaves_the_writer_able_to_write(any_db_url: str) -> None:
    """Batches of [a write that fails, a good write of another run], again and again: the
    good write always commits. On PostgreSQL the good write's statement reaches psycopg's
    prepare threshold inside an aborted pipeline at some round; before the fix, psycopg
    then believed it prepared and every later use failed ('prepared statement "_pg3_N"
    does not exist'), for this write and every write after it."""

    async def main() -> None:
        store = open_store(any_db_url)
        await store.open()
        try:
            await store.register_worker("w1", "h", 1, real_now=time.time(), lease=60)
            bad = await _owned_run(store, "bad")
            good = await _owned_run(store, "good")
            install_fault(any_db_url, "NEW.name = 'poison'")
            for i in range(12):
                outcomes = await asyncio.gather(
                    # Two events: another statement than the good write's.
                    store.append(bad, 1, 1, [_event(1, "poison"), _event(2)], now=101.0),
                    store.append(good, 1, 1 + i, [_event(1 + i)], now=101.0),
                    return_exceptions=True)
                assert isinstance(outcomes[0], StoreError), outcomes
                assert outcomes[1] is None, f"round {i}: {outcomes[1]!r}"
            history = await store.load_history(good)
            assert [e.seq for e in history] == list(range(13))
        finally:
            await store.close()

    run(main())


def test_an_append_must_continue_the_stored_history(any_db_url: str) -> None:
    """An append whose first sequence number is not the stored history's length writes
    nothing (the writer of the events before it failed): the store refuses it as fenced,
    so a history can never have a gap."""

    async def main() -> None:
        store = open_store(any_db_url)
        await store.open()
        try:
            await store.register_worker("w1", "h", 1, real_now=time.time(), lease=60)
            run_id = await _owned_run(store, "r")
            with pytest.raises(Fenced):
                await store.append(run_id, 1, 2, [_event(2)], now=101.0)  # seq 1 missing
            with pytest.raises(Fenced):
                await store.append(run_id, 1, 2, [_event(2)], now=101.0, status="suspended",
                                   wake_at=200.0, release=True)
            await store.append(run_id, 1, 1, [_event(1)], now=101.0)
            with pytest.raises(Fenced):  # seq 1 again: already there
                await store.append(run_id, 1, 1, [_event(1)], now=101.0)
            history = await store.load_history(run_id)
            assert [(e.seq, e.op) for e in history] == [(0, None), (1, 1)]
        finally:
            await store.close()

    run(main())


@duro.step(name="faults.refused")
async def refused_step() -> str:
    EXECUTIONS.append(1)
    return "x"


@duro.workflow(name="faults.refused_wf")
async def refused_wf() -> str:
    return await refused_step()


EXECUTIONS: list[int] = []


def test_a_write_the_database_refuses_parks_the_run(any_db_url: str) -> None:
    """A write no retry can get past (here a constraint of the database's own) parks the
    run with the database's reason; before, the worker dropped and reloaded it forever,
    running its step again each time."""
    EXECUTIONS.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            install_fault(any_db_url, "NEW.name = 'faults.refused'", refused=True)
            handle = await engine.start(refused_wf, id="refused")

            async def parked() -> bool:
                return (await handle.status()).value == "parked"

            await wait_until(parked, timeout=10)
            info = await handle.describe()
            assert info.error is not None and info.error.type == "DataRejectedError"
            assert "refused" in info.error.message
            await asyncio.sleep(0.3)
            assert EXECUTIONS == [1]
            set_fault(any_db_url, False)
            await engine.resume("refused")
            assert await handle.result(timeout=10) == "x"

    run(main())


def test_a_start_whose_insert_fails_stores_nothing_and_spares_its_batch(
        any_db_url: str) -> None:
    """Starts gathered into one batch, every other one failing in the database as it
    writes its ``run_started`` event (SQLite runs a plain start without the operation
    machinery: the same savepoint and rollback must hold): each failing start raises a
    typed error and leaves no run, the others commit, and the writer goes on."""
    async def main() -> None:
        async with duro.Client(any_db_url) as client:
            install_fault(any_db_url, "NEW.kind = 'run_started' AND NEW.name = 'poisoned'")
            names = ["poisoned" if i % 2 else "healthy" for i in range(16)]
            outcomes = await asyncio.gather(
                *(client.start(name, id=f"start-{i}") for i, name in enumerate(names)),
                return_exceptions=True)
            for i, (name, got) in enumerate(zip(names, outcomes, strict=True)):
                if name == "poisoned":
                    assert isinstance(got, StoreError), (i, got)
                else:
                    assert isinstance(got, duro.WorkflowHandle), (i, got)
            stored = {r.workflow_id for r in await client.list(limit=100)}
            assert stored == {f"start-{i}" for i in range(0, 16, 2)}
            # Alone (no batch around it: no savepoint), and after the fault is gone.
            with pytest.raises(StoreError):
                await client.start("poisoned", id="alone")
            set_fault(any_db_url, False)
            assert (await client.start("poisoned", id="alone")).workflow_id == "alone"
            assert (await client.start("healthy", id="start-0")).workflow_id == "start-0"

    run(main())
