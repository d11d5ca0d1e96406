"""Signals deduplicated by a delivery id (issue 16): at most one signal per id in a
workflow id's chain of runs, on both stores — sequential and concurrent repeats, across
continue-as-new, after the run ended, through signal-with-start, in the database itself
(the primary key decides, not a read before the write), and through a failed write.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import pytest

import duro
from duro._history import EventKind, SignalMeta
from duro.errors import InvalidArgumentError, RunNotFoundError, StoreError
from duro.store import Message, open_store
from duro.store._base import Tx
from duro.store._base import _writes as w
from tests.conftest import run, wait_until
from tests.faults import _pg, install_fault, set_fault


@duro.workflow(name="sigids.inbox")
async def inbox(got: list[str], per_run: int) -> list[str]:
    """Takes "hook" signals until "stop"; continues as new every ``per_run`` (0: never)."""
    while True:
        value = await duro.wait_for_signal("hook", type=str)
        got = [*got, value]
        if value == "stop":
            return got
        if per_run and len(got) % per_run == 0:
            duro.continue_as_new(got, per_run)


async def _signal_ids(client: duro.Client, workflow_id: str) -> Counter[str | None]:
    """The delivery ids of every signal recorded by the workflow id's runs (None: sent
    without one)."""
    seen: Counter[str | None] = Counter()
    for record in await client.store.list_runs(id_prefix=workflow_id, limit=100):
        if record.workflow_id != workflow_id:
            continue
        for event in await client.store.load_history(record.run_id):
            if event.kind == EventKind.SIGNAL_RECEIVED:
                seen[SignalMeta.decode(event.meta).id] += 1
    return seen


def test_a_delivery_id_is_recorded_once(any_db_url: str) -> None:
    """Repeats of an id, one after another and twenty at once, record one signal; signals
    without an id are all recorded; once the run ended, a taken id is still a no-op that
    succeeds and a new one is refused."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(inbox, [], 0, id="once")
            for _ in range(3):
                await engine.signal("once", "hook", "a", id="d1")
            await handle.signal("hook", "b", id="d2")
            await handle.signal("hook", "b", id="d2")
            await engine.signal("once", "hook", "c")
            await engine.signal("once", "hook", "c")
            await asyncio.gather(*(engine.signal("once", "hook", "x", id="d3")
                                   for _ in range(20)))
            await engine.signal("once", "hook", "stop", id="d4")
            assert await handle.result(timeout=20) == ["a", "b", "c", "c", "x", "stop"]
            assert await _signal_ids(engine, "once") == {"d1": 1, "d2": 1, None: 2, "d3": 1,
                                                          "d4": 1}
            # The run has ended: the same delivery again is still a delivery done...
            await engine.signal("once", "hook", "late", id="d1")
            # ...but a new one (or one without an id) has no live run to go to.
            with pytest.raises(RunNotFoundError):
                await engine.signal("once", "hook", "late", id="d9")
            with pytest.raises(RunNotFoundError):
                await engine.signal("once", "hook", "late")
            assert await _signal_ids(engine, "once") == {"d1": 1, "d2": 1, None: 2, "d3": 1,
                                                          "d4": 1}

    run(main())


def test_concurrent_deliveries_from_several_processes_record_one_signal(
        any_db_url: str) -> None:
    """Four clients, each with its own store connection (its own writer: on PostgreSQL
    separate transactions racing, on SQLite separate writers taking turns), send the same
    ids at once: one signal per id."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(inbox, [], 0, id="race")
            clients = [duro.Client(any_db_url) for _ in range(4)]
            async with contextlib.AsyncExitStack() as stack:
                for client in clients:
                    await stack.enter_async_context(client)
                await asyncio.gather(*(client.signal("race", "hook", f"v{i}", id=f"id-{i}")
                                       for i in range(5) for client in clients
                                       for _ in range(3)))
            await engine.signal("race", "hook", "stop")
            got = await handle.result(timeout=20)
            assert sorted(got) == ["stop", "v0", "v1", "v2", "v3", "v4"], got
            ids = await _signal_ids(engine, "race")
            assert ids == {**{f"id-{i}": 1 for i in range(5)}, None: 1}

    run(main())


def test_an_id_holds_across_continue_as_new(any_db_url: str) -> None:
    """The scope is the chain of runs: a delivery taken by a run that continued as new is
    a no-op in its successor (as update ids are)."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(inbox, [], 2, id="chain")
            await engine.signal("chain", "hook", "a", id="d1")
            await engine.signal("chain", "hook", "b", id="d2")  # continues as new here

            async def continued() -> bool:
                current = await engine.store.get_run("chain")
                return current is not None and current.run_id != handle.run_id

            await wait_until(continued)
            await engine.signal("chain", "hook", "a", id="d1")
            await engine.signal("chain", "hook", "b", id="d2")
            await engine.signal("chain", "hook", "stop", id="d3")
            assert await handle.result(timeout=20) == ["a", "b", "stop"]
            assert await _signal_ids(engine, "chain") == {"d1": 1, "d2": 1, "d3": 1}

    run(main())


def test_signal_with_start_by_delivery_id(any_db_url: str) -> None:
    """signal-with-start repeated with one id: one run, one signal; after that run ended,
    the same delivery starts nothing even with on_reuse="allow", a new delivery starts a
    new run (a fresh start: a new chain, where the old ids are free again)."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handles = await asyncio.gather(*(
                engine.signal_with_start(inbox, [], 0, id="sws", signal="hook",
                                         payload="stop", signal_id="delivery-1")
                for _ in range(10)))
            assert len({h.run_id for h in handles}) == 1
            assert await handles[0].result(timeout=20) == ["stop"]
            again = await engine.signal_with_start(inbox, [], 0, id="sws", signal="hook",
                                                   payload="stop", signal_id="delivery-1",
                                                   on_reuse="allow")
            assert again.run_id == handles[0].run_id
            assert len(await engine.store.list_runs(id_prefix="sws")) == 1
            fresh = await engine.signal_with_start(inbox, [], 0, id="sws", signal="hook",
                                                   payload="a", signal_id="delivery-2",
                                                   on_reuse="allow")
            assert fresh.run_id != handles[0].run_id
            await engine.signal("sws", "hook", "stop", id="delivery-1")  # a new chain
            assert await fresh.result(timeout=20) == ["a", "stop"]
            assert await _signal_ids(engine, "sws") == {"delivery-1": 2, "delivery-2": 1}

    run(main())


def test_bad_delivery_ids_are_refused_and_store_nothing(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            await engine.start(inbox, [], 0, id="bad")
            for bad in ["", "  ", "a\nb", "x" * 1001, 7]:
                with pytest.raises(InvalidArgumentError, match="signal id"):
                    await engine.signal("bad", "hook", "a", id=bad)  # type: ignore[arg-type]
                with pytest.raises(InvalidArgumentError, match="signal id"):
                    await engine.signal_with_start(inbox, [], 0, id="bad-new", signal="hook",
                                                   signal_id=bad)  # type: ignore[arg-type]
            assert await engine.store.get_run("bad-new") is None
            assert await engine.store.read_inbox(
                (await engine.store.get_run("bad")).run_id) == []  # type: ignore[union-attr]

    run(main())


def test_the_primary_key_decides_without_the_read(any_db_url: str) -> None:
    """The store's send step twice with one id in one transaction, without the look-up
    that normally comes first: the database keeps one message."""

    async def main() -> None:
        store = open_store(any_db_url)
        await store.open()
        try:
            record, _ = await store.create_run(
                run_id="r1", workflow_id="pk", workflow_name="sigids.inbox", input=b"[]",
                now=1.0, owner=None, on_conflict="use_existing", on_reuse="use_existing")

            async def twice(tx: Tx) -> None:
                for payload in (b'"first"', b'"second"'):
                    await w.send(tx, record.run_id, Message(
                        kind="signal", name="hook", data=payload, signal_id="same"), 2.0)

            await store._write(twice)  # type: ignore[attr-defined]
            assert [m.data for m in await store.read_inbox("r1")] == [b'"first"']
        finally:
            await store.close()

    run(main())


@pytest.mark.postgres
def test_two_transactions_racing_on_postgresql_store_one_signal(pg_url: str) -> None:
    """Two transactions send one id to one run; the second waits on the first (seen
    waiting on a lock in pg_stat_activity) and, once the first commits, stores nothing."""
    from duro.store.postgres._sql import queries

    async def main() -> None:
        store = open_store(pg_url)
        await store.open()
        record, _ = await store.create_run(
            run_id="r1", workflow_id="pg-race", workflow_name="sigids.inbox", input=b"[]",
            now=1.0, owner=None, on_conflict="use_existing", on_reuse="use_existing")
        await store.close()
        sql = queries()["send_message"]
        params: dict[str, Any] = {"run_id": record.run_id, "kind": "signal", "name": "hook",
                                  "meta": None, "update_id": None, "signal_id": "same",
                                  "now": 2.0}
        with _pg(pg_url) as first, _pg(pg_url) as second, _pg(pg_url) as watch:
            first.autocommit = second.autocommit = False
            first.execute(sql, {**params, "data": b'"first"'})
            pid = second.info.backend_pid
            racing = asyncio.create_task(asyncio.to_thread(
                lambda: second.execute(sql, {**params, "data": b'"second"'})))
            deadline = time.monotonic() + 10
            while watch.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone() != ("Lock",):
                assert time.monotonic() < deadline, "the second transaction never waited"
                await asyncio.sleep(0.01)
            first.commit()
            await asyncio.wait_for(racing, 10)
            second.commit()
            rows = watch.execute("SELECT data FROM inbox WHERE run_id = %s",
                                 (record.run_id,)).fetchall()
            assert [bytes(r[0]) for r in rows] == [b'"first"']
            assert watch.execute("SELECT count(*) FROM signal_ids").fetchone() == (1,)

    run(main())


def test_a_failed_signal_with_start_stores_no_id_and_its_retry_records_one(
        any_db_url: str) -> None:
    """The start's transaction fails in the database (the run_started insert): no run, no
    id, no message. The provider retries the same delivery: one run, one signal."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            await engine.start(inbox, [], 0, id="warm-up")  # the schema exists
            install_fault(any_db_url, f"NEW.kind = '{EventKind.RUN_STARTED.value}'")
            with pytest.raises(StoreError):
                await engine.signal_with_start(inbox, [], 0, id="faulty", signal="hook",
                                               payload="a", signal_id="delivery-1")
            assert await engine.store.get_run("faulty") is None
            set_fault(any_db_url, False)
            for _ in range(3):
                handle = await engine.signal_with_start(
                    inbox, [], 0, id="faulty", signal="hook", payload="a",
                    signal_id="delivery-1")
            await handle.signal("hook", "stop")
            assert await handle.result(timeout=20) == ["a", "stop"]
            assert await _signal_ids(engine, "faulty") == {"delivery-1": 1, None: 1}
            assert len(await engine.store.list_runs(id_prefix="faulty")) == 1

    run(main())


def test_retention_takes_the_ids_with_the_runs(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.signal_with_start(inbox, [], 0, id="gone", signal="hook",
                                                    payload="stop", signal_id="d1")
            await handle.result(timeout=20)
            store: Any = engine.store
            assert await store.purge_finished(before=time.time() + 60) == 1
            # The chain is gone with its ids: the same delivery id is new again.
            again = await engine.signal_with_start(inbox, [], 0, id="gone", signal="hook",
                                                   payload="stop", signal_id="d1")
            assert again.run_id != handle.run_id
            assert await again.result(timeout=20) == ["stop"]

    run(main())
