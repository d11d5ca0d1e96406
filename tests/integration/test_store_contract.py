"""The Store contract, run against every store implementation (SQLite and PostgreSQL).

These talk to the store directly: ids, fencing, claims, leases, messages, migrations.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import duro
from duro.store import Fenced, NewEvent, Store, open_store
from duro.store.sqlite._sql import migrations
from tests.conftest import run

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "sqlite":
        return lambda: open_store(f"sqlite:///{tmp_path}/contract.db")
    url: str = request.getfixturevalue("pg_url")
    return lambda: open_store(url)


async def _opened(factory: StoreFactory) -> Store:
    store = factory()
    await store.open()
    return store


async def _create(store: Store, wid: str, *, owner: str | None = None,
                  **kw: object) -> tuple[duro.store.RunRecord, bool]:
    return await store.create_run(run_id=f"run-{wid}-{time.monotonic_ns()}", workflow_id=wid,
                                  workflow_name="wf", input=b'{"args":[]}', now=100.0,
                                  owner=owner, on_conflict=kw.get("on_conflict", "use_existing"),
                                  on_reuse=kw.get("on_reuse", "use_existing"))  # type: ignore[arg-type]


def ev(kind: str, op: int | None = None) -> NewEvent:
    return NewEvent(kind=kind, ts=101.0, op=op, name="s" if op else None, data=b"1")


def test_create_is_idempotent_by_workflow_id(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = await _opened(make_store)
        first, created = await _create(store, "a")
        again, created_again = await _create(store, "a")
        assert created and not created_again and again.run_id == first.run_id
        with pytest.raises(duro.WorkflowAlreadyStartedError):
            await _create(store, "a", on_conflict="fail")
        history = await store.load_history(first.run_id)
        assert [e.kind for e in history] == ["run_started"]
        await store.close()

    run(main())


def test_appends_are_fenced_by_epoch(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = await _opened(make_store)
        await store.register_worker("w1", "h", 1, real_now=time.time(), lease=30)
        await store.register_worker("w2", "h", 2, real_now=time.time() - 100, lease=1)
        rec, _ = await _create(store, "f", owner="w2")
        assert rec.epoch == 1
        await store.append(rec.run_id, 1, 1, [ev("step_completed", 1)], now=101)
        # w2's lease is long expired: w1 takes the run over, bumping the epoch.
        claims = await store.claim("w1", ["wf"], 10, now=200, real_now=time.time())
        assert [(c.run_id, c.epoch, c.history_len) for c in claims] == [(rec.run_id, 2, 2)]
        with pytest.raises(Fenced):
            await store.append(rec.run_id, 1, 2, [ev("step_completed", 2)], now=102)
        await store.append(rec.run_id, 2, 2, [ev("step_completed", 2)], now=103)
        kinds = [(e.seq, e.kind, e.op) for e in await store.load_history(rec.run_id)]
        assert kinds == [(0, "run_started", None), (1, "step_completed", 1),
                         (2, "step_completed", 2)]
        await store.close()

    run(main())


def test_an_outcome_is_recorded_once_even_if_asked_twice(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = await _opened(make_store)
        rec, _ = await _create(store, "once", owner="w")
        await store.append(rec.run_id, 1, 1, [ev("step_completed", 1)], now=101)
        with pytest.raises(duro.StoreError):
            await store.append(rec.run_id, 1, 2, [ev("step_completed", 1)], now=102)
        assert len(await store.load_history(rec.run_id)) == 2
        await store.close()

    run(main())


def test_group_commit_isolates_a_failing_operation(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = await _opened(make_store)
        recs = [(await _create(store, f"g{i}", owner="w"))[0] for i in range(20)]
        results = await asyncio.gather(
            *(store.append(r.run_id, 1 if i != 7 else 99, 1, [ev("step_completed", 1)],
                           now=101) for i, r in enumerate(recs)),
            return_exceptions=True,
        )
        assert [i for i, r in enumerate(results) if isinstance(r, Fenced)] == [7]
        assert all(r is None for i, r in enumerate(results) if i != 7)
        for i, r in enumerate(recs):
            assert len(await store.load_history(r.run_id)) == (1 if i == 7 else 2)
        await store.close()

    run(main())


def test_suspend_wake_and_claim_due_runs_only(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = await _opened(make_store)
        await store.register_worker("w", "h", 1, real_now=time.time(), lease=30)
        soon, _ = await _create(store, "soon", owner="w")
        later, _ = await _create(store, "later", owner="w")
        for rec, wake in ((soon, 150.0), (later, 500.0)):
            await store.append(rec.run_id, 1, 1, [], now=101, status="suspended",
                               wake_at=wake, release=True)
        assert await store.next_wake_at(["wf"]) == 150.0
        assert await store.next_wake_at(["other"]) is None
        assert await store.claim("w", ["wf"], 10, now=149, real_now=time.time()) == []
        claims = await store.claim("w", ["wf"], 10, now=151, real_now=time.time())
        assert [c.run_id for c in claims] == [soon.run_id] and claims[0].epoch == 2
        # A message wakes a suspended run at once.
        await store.send_message("later", "cancel", None, None, now=152)
        claims = await store.claim("w", ["wf"], 10, now=153, real_now=time.time())
        assert [c.run_id for c in claims] == [later.run_id]
        assert [m.kind for m in await store.read_inbox(later.run_id)] == ["cancel"]
        await store.close()

    run(main())


def test_load_runs_reads_a_batch_of_claimed_runs_at_once(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = await _opened(make_store)
        a, _ = await _create(store, "la", owner="w")
        b, _ = await _create(store, "lb", owner="w")
        c, _ = await _create(store, "lc", owner="w")
        # Several events in one append (the array form), NULL ops and names among them.
        await store.append(a.run_id, 1, 1, [ev("timer_fired", 1), ev("step_completed", 2),
                                            ev("marker")], now=101)
        await store.append(b.run_id, 1, 1, [ev("step_completed", 1)], now=101)
        await store.save_heartbeat(a.run_id, 2, b'{"n":1}', now=102)
        await store.save_heartbeat(a.run_id, 5, b'"x"', now=102)
        await store.send_message("lb", "signal", "go", b"[]", now=103)
        assert await store.load_runs([]) == {}
        got = await store.load_runs([a.run_id, b.run_id, c.run_id, "no-such-run"])
        assert list(got) == [a.run_id, b.run_id, c.run_id, "no-such-run"]
        for rec in (a, b, c):
            history = got[rec.run_id].history
            assert history == await store.load_history(rec.run_id)
            assert all(e.run_id == rec.run_id for e in history or [])
        assert [(e.seq, e.kind, e.op, e.name, e.data)
                for e in got[a.run_id].history or []][1:] == [
            (1, "timer_fired", 1, "s", b"1"), (2, "step_completed", 2, "s", b"1"),
            (3, "marker", None, None, b"1")]
        assert got[a.run_id].heartbeats == {2: b'{"n":1}', 5: b'"x"'}
        assert got[b.run_id].heartbeats == {}
        assert [r for r, x in got.items() if x.inbox] == [b.run_id]
        assert got["no-such-run"].history == [] and not got["no-such-run"].inbox
        # Histories only of those asked for; the inbox of all.
        some = await store.load_runs([a.run_id, b.run_id], history={a.run_id})
        assert some[a.run_id].history == got[a.run_id].history
        assert some[b.run_id].history is None and some[b.run_id].heartbeats == {}
        assert some[b.run_id].inbox and not some[a.run_id].inbox
        none = await store.load_runs([a.run_id, b.run_id], history=())
        assert [x.history for x in none.values()] == [None, None]
        assert [x.inbox for x in none.values()] == [False, True]
        await store.close()

    run(main())


def test_terminate_fences_out_the_owner(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = await _opened(make_store)
        rec, _ = await _create(store, "t", owner="w")
        done = await store.terminate("t", reason="stop", now=105)
        assert done.status == duro.RunStatus.TERMINATED
        with pytest.raises(Fenced):
            await store.append(rec.run_id, 1, 1, [ev("step_completed", 1)], now=106)
        assert [e.kind for e in await store.load_history(rec.run_id)] == [
            "run_started", "run_terminated"]
        with pytest.raises(duro.RunNotFoundError):
            await store.terminate("t", reason="again", now=107)
        await store.close()

    run(main())


def test_deregistering_releases_owned_runs(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = await _opened(make_store)
        await store.register_worker("w", "h", 1, real_now=time.time(), lease=30)
        rec, _ = await _create(store, "r", owner="w")
        await store.deregister_worker("w", now=110)
        got = await store.get_run("r")
        assert got is not None and got.status == duro.RunStatus.PENDING and got.owner is None
        claims = await store.claim("w2", ["wf"], 10, now=111, real_now=time.time())
        assert [c.run_id for c in claims] == [rec.run_id]
        await store.close()

    run(main())


def test_a_worker_row_says_which_queues_it_serves(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = await _opened(make_store)
        await store.register_worker("wq", "h", 1, real_now=time.time(), lease=30,
                                    queues=["gpu", "mail"])
        await store.register_worker("wall", "h", 2, real_now=time.time(), lease=30)
        served = {w.worker_id: w.queues for w in await store.list_workers()}
        assert served == {"wq": ("gpu", "mail"), "wall": None}
        # Registering again (a lost lease) states them again.
        await store.register_worker("wq", "h", 1, real_now=time.time(), lease=30,
                                    queues=["gpu"])
        assert [w.queues for w in await store.list_workers() if w.worker_id == "wq"] == [
            ("gpu",)]
        await store.close()

    run(main())


def test_live_workers_are_never_presumed_disconnected(make_store: StoreFactory) -> None:
    """``expire_disconnected_workers`` may only speed a dead worker's takeover up (stores
    without sessions never find anyone): workers alive on their stores keep their runs."""
    async def main() -> None:
        a, b = await _opened(make_store), await _opened(make_store)
        await a.register_worker("wa", "host-a", 1, real_now=time.time(), lease=30)
        await b.register_worker("wb", "host-b", 2, real_now=time.time(), lease=30)
        rec, _ = await _create(a, "alive", owner="wa")
        for _ in range(3):
            assert await a.expire_disconnected_workers() == 0
            assert await b.expire_disconnected_workers() == 0
        assert await b.claim("wb", ["wf"], 10, now=111, real_now=time.time()) == []
        got = await b.get_run("alive")
        assert got is not None and got.owner == "wa" and got.run_id == rec.run_id
        await a.close()
        await b.close()

    run(main())


def test_sqlite_migrations_reproduce_the_schema(tmp_path: Path) -> None:
    """Applying the numbered migrations yields exactly the committed schema snapshot."""
    snapshot = (Path(__file__).parent.parent.parent / "src/duro/store/sqlite/schema.sql")
    store = open_store(f"sqlite:///{tmp_path}/m.db")
    run(store.open())
    run(store.close())
    with sqlite3.connect(tmp_path / "m.db") as conn:
        rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                            "AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, name").fetchall()
        versions = [r[0] for r in conn.execute("SELECT version FROM duro_migrations")]
    actual = ";\n\n".join(r[0] for r in rows) + ";\n"
    assert versions == [v for v, _, _ in migrations()]
    assert actual == snapshot.read_text("utf-8"), (
        "schema drifted: regenerate src/duro/store/sqlite/schema.sql from a fresh database")




def test_sqlite_concurrent_first_opens_of_a_new_file_all_succeed(tmp_path: Path) -> None:
    """Switching a new file to WAL races between openers (SQLITE_BUSY without the busy
    handler); each opener must wait its turn instead of failing."""
    import threading

    failures: list[BaseException] = []

    def open_close(url: str, barrier: threading.Barrier) -> None:
        async def main() -> None:
            store = open_store(url)
            barrier.wait()
            await store.open()
            await store.list_runs()
            await store.close()

        try:
            asyncio.run(main())
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)

    for trial in range(25):
        url = f"sqlite:///{tmp_path}/fresh-{trial}.db"
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=open_close, args=(url, barrier)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert failures == []
