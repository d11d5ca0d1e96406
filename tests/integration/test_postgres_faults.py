"""PostgreSQL faults: the server restarted under load (``pg_ctl restart -m fast``), and the
retention job keeping the hot tables small.

The restart tests use a cluster of their own (they restart it), so they need the
machine's initdb/pg_ctl even when DURO_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Any

import pytest

import duro
from duro.store import NewEvent, open_store
from duro.store.postgres import PostgresStore
from duro.testing import ManualClock
from duro.worker._retention import RetentionPolicy, purge_once, retention_loop
from tests.conftest import run, wait_until
from tests.pg import Cluster

pytestmark = pytest.mark.postgres


def _restart(cluster: Cluster) -> float:
    started = time.monotonic()
    cluster.pg_ctl("restart", "-m", "fast")
    return time.monotonic() - started


def test_writes_and_reads_wait_through_a_restart(restartable: Cluster) -> None:
    url = restartable.fresh_url()

    async def main() -> None:
        store = open_store(url)
        assert isinstance(store, PostgresStore)
        await store.open()
        runs = [(await store.create_run(
            run_id=f"r{i}", workflow_id=f"r{i}", workflow_name="wf", input=b"[]", now=1.0,
            owner="w", on_conflict="fail", on_reuse="fail"))[0] for i in range(40)]
        lengths = {r.run_id: 1 for r in runs}
        uncertain: list[str] = []
        stop = asyncio.Event()

        async def resolve(run_id: str) -> int:
            """What a worker does after an uncertain commit: read the run again (retried
            here until the server is back: the test bounds the wait)."""
            while True:
                try:
                    return len(await store.load_history(run_id))
                except duro.StoreError:
                    await asyncio.sleep(0.1)

        async def writer(run_id: str) -> None:
            while not stop.is_set():
                op = lengths[run_id]  # ops 1, 2, ... follow the history's length
                event = NewEvent(kind="step_completed", ts=2.0, op=op, name="s", data=b"1")
                try:
                    await store.append(run_id, 1, lengths[run_id], [event], now=2.0)
                except duro.StoreError as exc:
                    # Only a commit cut off mid-flight may end like this (then the worker
                    # releases and replays the run); anything else is a bug.
                    assert "may have been recorded" in str(exc), exc
                    uncertain.append(run_id)
                    lengths[run_id] = await resolve(run_id)
                    continue
                lengths[run_id] += 1
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(writer(r.run_id)) for r in runs]
        await asyncio.sleep(0.5)
        before = dict(lengths)
        took = await asyncio.to_thread(_restart, restartable)
        await asyncio.sleep(1.0)  # writes go on after the restart
        stop.set()
        await asyncio.gather(*tasks)
        assert store._writer is not None and store._writer.reconnects >= 1
        assert took < 30
        for r in runs:
            history = await store.load_history(r.run_id)  # reads recovered too
            assert len(history) == lengths[r.run_id] > 5
            assert [e.op for e in history[1:]] == list(range(1, len(history)))
        # A commit cut off by the restart leaves every append of that one batch uncertain
        # (how many depends on timing: all 40 at times); every writer went on afterwards.
        assert all(lengths[r.run_id] > before[r.run_id] + 5 for r in runs)
        await store.close()

    run(main(), timeout=120)


EXECUTIONS: collections.Counter[tuple[str, int]] = collections.Counter()
_LOCK = threading.Lock()


@duro.step
async def restart_step(key: str, i: int, delay: float) -> int:
    with _LOCK:
        EXECUTIONS[(key, i)] += 1
    await asyncio.sleep(delay)
    return i


@duro.workflow(name="restart_wf")
async def restart_wf(key: str, steps: int, delay: float) -> int:
    total = 0
    for i in range(steps):
        total += await restart_step(key, i, delay)
    return total


def test_500_live_runs_complete_through_a_restart(restartable: Cluster) -> None:
    """pg_ctl restart -m fast while 500 runs are live: all complete, none lost, and no
    step completion is recorded twice (re-executions of cut-off attempts are allowed)."""
    url = restartable.fresh_url()
    n, steps = 500, 4
    EXECUTIONS.clear()

    async def main() -> dict[str, Any]:
        async with duro.Engine(url, workflows=[restart_wf], lease=5.0) as engine:
            handles = await asyncio.gather(*(
                engine.start(restart_wf, f"k{i}", steps, 0.3, id=f"restart-{i}")
                for i in range(n)))

            await wait_until(lambda: _at_least(url, "step_completed", n), timeout=60)
            live_before = await _count_live(url)
            took = await asyncio.to_thread(_restart, restartable)
            results = await asyncio.gather(*(h.result(timeout=120) for h in handles))
            assert results == [sum(range(steps))] * n
            return {"restart_s": took, "live_at_restart": live_before}

    info = run(main(), timeout=240)
    assert info["live_at_restart"] >= 100
    rows = run(_query(url, """
        SELECT (SELECT count(*) FROM runs WHERE status = 'completed'),
               (SELECT count(*) FROM runs),
               (SELECT count(*) FROM (SELECT run_id, op FROM events
                                      WHERE kind = 'step_completed'
                                      GROUP BY run_id, op HAVING count(*) > 1) d),
               (SELECT count(*) FROM events WHERE kind = 'step_completed')"""))
    completed, total, duplicated, step_events = rows[0]
    assert (completed, total, duplicated, step_events) == (n, n, 0, n * steps)
    assert set(EXECUTIONS) == {(f"k{i}", s) for i in range(n) for s in range(steps)}
    reexecuted = sum(c - 1 for c in EXECUTIONS.values())
    print(f"\nrestart took {info['restart_s']:.2f}s with {info['live_at_restart']} live runs; "
          f"{reexecuted} step attempts re-executed (at-least-once), 0 recorded twice")


async def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    schema = url.split("schema=")[1].split("&")[0]
    async with await psycopg.AsyncConnection.connect(
            url.split("?")[0], options=f"-c search_path={schema}") as conn:
        cur = await conn.execute(sql.encode())
        return list(await cur.fetchall())


async def _count(url: str, kind: str) -> int:
    try:
        rows = await _query(url, f"SELECT count(*) FROM events WHERE kind = '{kind}'")
    except Exception:
        return 0
    return int(rows[0][0])


async def _at_least(url: str, kind: str, n: int) -> bool:
    return await _count(url, kind) >= n


async def _count_live(url: str) -> int:
    rows = await _query(url, "SELECT count(*) FROM runs WHERE status IN "
                             "('pending', 'running', 'suspended')")
    return int(rows[0][0])


@duro.workflow(name="retention_wf")
async def retention_wf(i: int) -> int:
    return i


def test_retention_deletes_old_finished_runs_one_worker_at_a_time(pg_url: str) -> None:
    clock = ManualClock()
    policy = RetentionPolicy(keep=86400, interval=0.05, batch=40, pause=0)

    async def main() -> None:
        async with duro.Engine(pg_url, workflows=[retention_wf], clock=clock) as engine:
            old = await asyncio.gather(*(engine.start(retention_wf, i) for i in range(150)))
            await asyncio.gather(*(h.result(timeout=30) for h in old))
            clock.advance(2 * 86400)
            recent = await asyncio.gather(*(engine.start(retention_wf, i) for i in range(10)))
            await asyncio.gather(*(h.result(timeout=30) for h in recent))
            others = [open_store(pg_url) for _ in range(2)]
            for s in others:
                await s.open()
            # Three workers purge at once: between them every old run goes exactly once.
            counts = await asyncio.gather(
                purge_once(engine.store, policy, clock.now()),  # type: ignore[arg-type]
                *(purge_once(s, policy, clock.now()) for s in others))  # type: ignore[arg-type]
            leftover = await purge_once(engine.store, policy, clock.now())  # type: ignore[arg-type]
            assert sum(counts) + leftover == 150
            left = await engine.list(limit=1000)
            assert sorted(r.run_id for r in left) == sorted(h.run_id for h in recent)
            rows = await _query(pg_url, "SELECT (SELECT count(*) FROM events), "
                                        "(SELECT count(*) FROM runs)")
            assert rows[0] == (20, 10)  # run_started + run_completed of the recent runs
            # The loop a worker runs: it keeps the tables small as runs age.
            clock.advance(2 * 86400)
            task = asyncio.create_task(retention_loop(engine.store, policy, clock))
            await wait_until(lambda: _empty(pg_url), timeout=10)
            task.cancel()
            for s in others:
                await s.close()

    run(main())


async def _empty(url: str) -> bool:
    rows = await _query(url, "SELECT count(*) FROM runs")
    return int(rows[0][0]) == 0


class _NoPurgeStore:
    """A store without purge_finished (a third-party Store implementation, say)."""


def test_retention_on_a_store_without_purge_is_a_logged_no_op(
        caplog: pytest.LogCaptureFixture) -> None:
    run(retention_loop(_NoPurgeStore(), RetentionPolicy(keep=1), ManualClock()))
    assert "retention is not supported" in caplog.text


def _is_writer(box: list[Any], conn: Any) -> bool:
    """``conn`` is the writer connection of the store in ``box`` (reads pipeline too)."""
    return bool(box) and box[0]._writer is not None and box[0]._writer._conn is conn


def test_a_commit_whose_answer_was_lost_is_resolved(pg_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection dies after COMMIT reached the server but before its answer came back
    (simulated): the writer fences its commit marker, finds the batch's stamp, then
    retries idempotent operations, undoes claims and owned creations, and reports the rest
    as uncertain."""
    import psycopg

    armed: list[int] = [0]
    box: list[Any] = []
    original = psycopg.AsyncPipeline.__aexit__

    async def commit_then_lose(self: psycopg.AsyncPipeline, *exc_info: Any) -> None:
        await original(self, *exc_info)  # the Sync that commits the writer's batch
        if armed[0] > 0 and exc_info[0] is None and _is_writer(box, self._conn):
            armed[0] -= 1
            await self._conn.close()
            raise psycopg.OperationalError("simulated: connection lost after the commit")

    monkeypatch.setattr(psycopg.AsyncPipeline, "__aexit__", commit_then_lose)

    async def main() -> None:
        store = open_store(pg_url)
        await store.open()
        box.append(store)
        for i in range(3):
            await store.create_run(run_id=f"a{i}", workflow_id=f"a{i}", workflow_name="wf",
                                   input=b"[]", now=1.0, owner=None, on_conflict="fail",
                                   on_reuse="fail")
        armed[0] = 1  # idempotent: simply done again
        await store.register_worker("w", "h", 1, real_now=time.time(), lease=30)
        armed[0] = 1  # a claim: what it took is given back
        with pytest.raises(duro.StoreError, match="may have been recorded"):
            await store.claim("w", ["wf"], 10, now=2.0, real_now=time.time())
        runs = await store.list_runs()
        assert {(r.status.value, r.owner) for r in runs} == {("pending", None)}
        assert {r.epoch for r in runs} == {1}  # the claim did commit (epoch bumped)
        armed[0] = 1  # created already owned: released for any worker to claim
        with pytest.raises(duro.StoreError, match="may have been recorded"):
            await store.create_run(run_id="own", workflow_id="own", workflow_name="wf",
                                   input=b"[]", now=1.0, owner="w", on_conflict="fail",
                                   on_reuse="fail")
        got = await store.get_run("own")
        assert got is not None and got.status.value == "pending" and got.owner is None
        claims = await store.claim("w", ["wf"], 10, now=3.0, real_now=time.time())
        assert len(claims) == 4
        mine = next(c for c in claims if c.run_id == "a0")
        armed[0] = 1  # an append: uncertain (the worker drops the run and replays it)
        with pytest.raises(duro.StoreError, match="may have been recorded"):
            await store.append("a0", mine.epoch, 1,
                               [NewEvent(kind="marker", ts=4.0, name="m")], now=4.0)
        assert [e.kind for e in await store.load_history("a0")] == ["run_started", "marker"]
        await store.close()

    run(main())


def test_a_batch_cut_off_before_commit_runs_again(pg_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection dies while a batch is in flight, before the Sync that commits it
    (simulated): the fence finds no stamp of that batch, so the batch runs again and the
    caller never sees the outage; the event is recorded once."""
    import psycopg

    armed: list[int] = [0]
    box: list[Any] = []
    original = psycopg.AsyncPipeline.__aexit__

    async def lose_then_exit(self: psycopg.AsyncPipeline, *exc_info: Any) -> None:
        if armed[0] > 0 and exc_info[0] is None and _is_writer(box, self._conn):
            armed[0] -= 1
            await self._conn.close()
            raise psycopg.OperationalError("simulated: connection lost before the Sync")
        await original(self, *exc_info)

    monkeypatch.setattr(psycopg.AsyncPipeline, "__aexit__", lose_then_exit)

    async def main() -> None:
        store = open_store(pg_url)
        assert isinstance(store, PostgresStore)
        await store.open()
        box.append(store)
        run_, _ = await store.create_run(run_id="b", workflow_id="b", workflow_name="wf",
                                         input=b"[]", now=1.0, owner="w",
                                         on_conflict="fail", on_reuse="fail")
        armed[0] = 1
        await store.append("b", run_.epoch, 1, [NewEvent(kind="marker", ts=2.0, name="m")],
                           now=2.0)
        assert armed[0] == 0  # it was cut off, settled as lost and run again
        assert [e.kind for e in await store.load_history("b")] == ["run_started", "marker"]
        raw = await _raw(store)
        cur = await raw.execute("SELECT count(*) FROM writer_commits WHERE fenced")
        assert await cur.fetchone() == (1,)
        await raw.close()
        await store.close()

    run(main())


async def _raw(store: PostgresStore) -> Any:
    import psycopg
    return await psycopg.AsyncConnection.connect(
        store.options.conninfo, autocommit=True, **store._connect_kwargs())


async def _open_writer(url: str) -> tuple[PostgresStore, Any, Any]:
    """An open store, its writer (after one batch), and another connection to its schema."""
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    await store.open()
    await store.register_worker("w", "h", 1, real_now=time.time(), lease=30)
    assert store._writer is not None
    return store, store._writer, await _raw(store)


def _lost(number: int, pid: int) -> Any:
    from duro.store.postgres._writer import _Lost
    return _Lost(RuntimeError("simulated"), number, pid)


def test_settling_a_lost_batch_waits_for_it_and_locks_it_out(pg_url: str) -> None:
    """The protocol against a real server: a transaction of the "old connection" (another
    connection stamping with the writer's id) that holds the lost batch's key makes the
    writer wait and then report its outcome; once a batch is settled as not committed, a
    late transaction stamping that number fails before anything is written."""
    import psycopg

    async def main() -> None:
        store, writer, old = await _open_writer(pg_url)
        stamp = _queries()["writer_stamp"]
        for number, outcome in ((1000, "COMMIT"), (1001, "ROLLBACK")):
            await old.execute("BEGIN")
            await old.execute(stamp, {"writer": writer.writer_id, "batch": number})
            task = asyncio.create_task(writer._committed(_lost(number, 0),
                                                         time.monotonic() + 10))
            await asyncio.sleep(0.3)
            assert not task.done()  # waits for the transaction holding the key
            await old.execute(outcome)
            assert await asyncio.wait_for(task, 10) is (outcome == "COMMIT")
        # Batch 1001 is settled as lost: its transaction arriving now cannot commit.
        await old.execute("BEGIN")
        with pytest.raises(psycopg.errors.UniqueViolation):
            await old.execute(stamp, {"writer": writer.writer_id, "batch": 1001})
        await old.execute("ROLLBACK")
        # A batch whose stamp never reached the server did not commit.
        assert await writer._committed(_lost(1002, 0), time.monotonic() + 10) is False
        await old.close()
        await store.close()

    run(main())


def test_settling_ends_a_transaction_stuck_on_the_lost_connection(pg_url: str) -> None:
    """A backend that keeps the lost batch's key (its client is gone, the server has not
    noticed) is ended after ``stuck_after`` seconds; its batch did not commit."""
    import psycopg

    async def main() -> None:
        store, writer, stuck = await _open_writer(pg_url)
        writer.stuck_after = 0.2
        await stuck.execute("BEGIN")
        await stuck.execute(_queries()["writer_stamp"],
                            {"writer": writer.writer_id, "batch": 77})
        started = time.monotonic()
        got = await asyncio.wait_for(
            writer._committed(_lost(77, stuck.info.backend_pid), time.monotonic() + 10), 10)
        assert got is False and time.monotonic() - started >= 0.2
        with pytest.raises(psycopg.OperationalError):
            await stuck.execute("COMMIT")
        await stuck.close()
        # Out of time by the first lock timeout: it cannot say, but ends the backend even
        # so (left alive, its transaction would keep its locks and might still commit).
        stuck = await _raw(store)
        await stuck.execute("BEGIN")
        await stuck.execute(_queries()["writer_stamp"],
                            {"writer": writer.writer_id, "batch": 78})
        got = await asyncio.wait_for(
            writer._committed(_lost(78, stuck.info.backend_pid), time.monotonic() + 0.05), 10)
        assert got is None
        with pytest.raises(psycopg.OperationalError):
            await stuck.execute("COMMIT")
        await stuck.close()
        await store.close()

    run(main())


def test_the_writer_keeps_its_latest_keys_only(pg_url: str) -> None:
    """Keys are pruned every ``prune_every`` batches, except those of settled lost
    batches; a stopped writer deletes its keys."""
    async def main() -> None:
        store, writer, raw = await _open_writer(pg_url)
        writer.prune_every = 8
        writer._number += 1  # a batch lost in flight, settled; later batches prune below it
        assert await writer._committed(_lost(writer._number, 0),
                                       time.monotonic() + 10) is False
        for _ in range(30):
            await store.register_worker("w", "h", 1, real_now=time.time(), lease=30)
        count = "SELECT count(*), count(*) FILTER (WHERE fenced) FROM writer_commits " \
                "WHERE writer_id = %s"
        cur = await raw.execute(count, (writer.writer_id,))
        total, fenced = await cur.fetchone()
        assert fenced == 1 and 2 <= total <= 1 + 8
        await store.close()
        cur = await raw.execute(count, (writer.writer_id,))
        assert await cur.fetchone() == (0, 0)
        await raw.close()

    run(main())


def test_a_client_side_error_midway_commits_nothing_of_the_batch(pg_url: str) -> None:
    """An operation fails in psycopg itself (a parameter it cannot send) after the batch
    queued other writes: no part of that transaction commits (the implicit transaction's
    Sync would have), the other operation runs again alone and commits once, and the
    faulty one fails with nothing written."""
    import psycopg

    async def main() -> None:
        store = open_store(pg_url)
        assert isinstance(store, PostgresStore)
        await store.open()
        writer = store._writer
        assert writer is not None
        raw = await _raw(store)
        await raw.execute("CREATE TABLE client_err (v INT)")

        def insert(*values: object) -> Any:
            async def op(conn: psycopg.AsyncConnection[Any]) -> Any:
                for v in values:
                    await conn.execute("INSERT INTO client_err VALUES (%s)", (v,))

                async def finish() -> int:
                    return len(values)
                return finish
            return op

        batches, ops = writer.batches, writer.ops
        good = writer.submit(insert(1))
        bad = writer.submit(insert(2, object()))  # the second value cannot be adapted
        assert await good == 1
        with pytest.raises(Exception, match="cannot adapt"):
            await bad
        assert (writer.batches - batches, writer.ops - ops) == (1, 2)  # one batch of two
        cur = await raw.execute("SELECT v FROM client_err ORDER BY v")
        assert [r[0] for r in await cur.fetchall()] == [1]
        await raw.close()
        await store.close()

    run(main())


def _queries() -> dict[str, str]:
    from duro.store.postgres._sql import queries
    return queries()
