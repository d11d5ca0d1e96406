"""PostgreSQL specifics: migrations and the schema snapshot, URL options, clear errors,
LISTEN/NOTIFY wake-ups, concurrent claimers, schema isolation, the retention purge.

The store contract itself runs on PostgreSQL in test_store_contract.py, and the
store-agnostic engine tests run there too (the ``any_db_url`` fixture).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import duro
from duro.errors import StoreError
from duro.store import NewEvent, Store, open_store
from tests.conftest import run, wait_until

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent.parent
SNAPSHOT = ROOT / "src/duro/store/postgres/schema.sql"


def _schema_of(url: str) -> str:
    from urllib.parse import parse_qs, urlparse

    return parse_qs(urlparse(url).query)["schema"][0]


async def _dump(url: str) -> str:
    import psycopg

    from duro.store.postgres._schema import dump_schema

    async with await psycopg.AsyncConnection.connect(url.split("?")[0],
                                                     autocommit=True) as conn:
        return await dump_schema(conn, _schema_of(url))


def test_postgres_migrations_reproduce_the_schema(pg_url: str) -> None:
    """Applying the numbered migrations yields exactly the committed schema snapshot."""
    from duro.store.postgres._sql import migrations

    async def main() -> tuple[str, list[int]]:
        store = open_store(pg_url)
        await store.open()
        await store.close()
        import psycopg

        async with await psycopg.AsyncConnection.connect(pg_url.split("?")[0]) as conn:
            cur = await conn.execute(
                f'SELECT version FROM "{_schema_of(pg_url)}".duro_migrations ORDER BY 1')
            versions = [r[0] for r in await cur.fetchall()]
        return await _dump(pg_url), versions

    actual, versions = run(main())
    assert versions == [v for v, _, _ in migrations()]
    assert actual == SNAPSHOT.read_text("utf-8"), (
        "schema drifted: regenerate src/duro/store/postgres/schema.sql with "
        "`duro db schema --db 'postgresql://...?schema=<freshly migrated>'`")


def test_workers_starting_together_migrate_once(pg_url: str) -> None:
    async def main() -> None:
        stores = [open_store(pg_url) for _ in range(6)]
        await asyncio.gather(*(s.open() for s in stores))
        rec, created = await stores[0].create_run(
            run_id="r", workflow_id="w", workflow_name="wf", input=b"[]", now=1.0,
            owner=None, on_conflict="use_existing", on_reuse="use_existing")
        assert created
        seen = await asyncio.gather(*(s.get_run("w") for s in stores))
        assert {r.run_id for r in seen if r is not None} == {rec.run_id}
        await asyncio.gather(*(s.close() for s in stores))

    run(main())


def test_migrate_false_needs_duro_db_migrate(pg_url: str, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    from duro.cli._main import run_cli

    manual = pg_url + "&migrate=false"

    async def opens() -> None:
        store = open_store(manual)
        await store.open()
        await store.close()

    with pytest.raises(StoreError, match="duro db migrate"):
        run(opens())
    assert run_cli(["db", "migrate", "--db", manual]) == 0
    from duro.store.postgres._sql import migrations

    versions = [v for v, _, _ in migrations()]
    assert (f"at version {versions[-1]} (applied {', '.join(map(str, versions))})"
            in capsys.readouterr().out)
    run(opens())  # now the schema is current
    assert run_cli(["db", "migrate", "--db", manual]) == 0
    assert "nothing to apply" in capsys.readouterr().out
    assert run_cli(["db", "schema", "--db", manual]) == 0
    assert capsys.readouterr().out == SNAPSHOT.read_text("utf-8")


def test_url_options_and_their_errors() -> None:
    from duro.store.postgres import parse_postgres_url

    opts = parse_postgres_url("postgresql://u:pw@db.example:6543/app?schema=jobs&migrate=off"
                              "&pool_size=3&sslmode=require&reconnect_timeout=7")
    assert (opts.schema, opts.migrate, opts.pool_size, opts.reconnect_timeout) == (
        "jobs", False, 3, 7.0)
    assert "sslmode=require" in opts.conninfo and "schema" not in opts.conninfo
    assert "connect_timeout=10" in opts.conninfo
    assert parse_postgres_url("postgres://h/db").schema == "duro"
    with pytest.raises(StoreError, match="schema name"):
        parse_postgres_url("postgresql://h/db?schema=Robert');DROP")
    with pytest.raises(StoreError, match="migrate"):
        parse_postgres_url("postgresql://h/db?migrate=maybe")
    with pytest.raises(StoreError, match="SQLite setting"):
        open_store("postgresql://h/db", synchronous="NORMAL")


def test_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match=r"pip install 'duro\[postgres\]'"):
        open_store("postgresql://localhost/db")


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def test_unreachable_database_at_start_is_one_clear_line() -> None:
    url = f"postgresql://duro@127.0.0.1:{_dead_port()}/app"

    async def main() -> None:
        async with duro.Engine(url):
            raise AssertionError("opened an unreachable database")

    with pytest.raises(StoreError, match="cannot connect to PostgreSQL at "
                                         r"postgresql://duro@127\.0\.0\.1:\d+/app") as info:
        run(main())
    assert "\n" not in str(info.value)
    proc = subprocess.run([sys.executable, "-m", "duro", "ls", "--db", url],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 4
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("duro: error: cannot connect to "
                                                   "PostgreSQL"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_schemas_keep_stores_apart(pg_cluster: Any) -> None:
    a_url, b_url = pg_cluster.fresh_url(), pg_cluster.fresh_url()

    async def main() -> None:
        a, b = open_store(a_url), open_store(b_url)
        await a.open()
        await b.open()
        await a.create_run(run_id="ra", workflow_id="same", workflow_name="wf", input=b"[]",
                           now=1.0, owner=None, on_conflict="fail", on_reuse="fail")
        # The same workflow id is free in the other schema.
        _, created = await b.create_run(run_id="rb", workflow_id="same", workflow_name="wf",
                                        input=b"[]", now=1.0, owner=None, on_conflict="fail",
                                        on_reuse="fail")
        assert created
        assert [r.run_id for r in await a.list_runs()] == ["ra"]
        assert [r.run_id for r in await b.list_runs()] == ["rb"]
        await a.close()
        await b.close()

    run(main())


def test_notify_wakes_other_stores_not_the_sender(pg_url: str) -> None:
    async def main() -> None:
        listener, sender = open_store(pg_url), open_store(pg_url)
        await listener.open()
        await sender.open()
        woken: list[str] = []
        unsubscribe = listener.subscribe(lambda: woken.append("listener"))
        sender.subscribe(lambda: woken.append("sender"))
        await wait_until(lambda: listener._listener.listening.is_set(),  # type: ignore[attr-defined]
                         timeout=10)
        await wait_until(lambda: sender._listener.listening.is_set(),  # type: ignore[attr-defined]
                         timeout=10)
        await sender.create_run(run_id="n1", workflow_id="n1", workflow_name="wf",
                                input=b"[]", now=1.0, owner=None, on_conflict="fail",
                                on_reuse="fail")
        await wait_until(lambda: "listener" in woken, timeout=10)
        # Appends to an owned run make nothing claimable: no notification for them.
        rec, _ = await sender.create_run(run_id="n2", workflow_id="n2", workflow_name="wf",
                                         input=b"[]", now=1.0, owner="w", on_conflict="fail",
                                         on_reuse="fail")
        count = woken.count("listener")
        await sender.append(rec.run_id, 1, 1, [NewEvent(kind="marker", ts=2.0, name="m")],
                            now=2.0)
        await sender.release(rec.run_id, 1, now=3.0)  # claimable again: notify
        await wait_until(lambda: woken.count("listener") > count, timeout=10)
        assert "sender" not in woken  # a store does not wake itself
        unsubscribe()
        await listener.close()
        await sender.close()

    run(main())


def test_concurrent_claimers_never_share_a_run(pg_url: str) -> None:
    async def main() -> None:
        stores: list[Store] = [open_store(pg_url) for _ in range(4)]
        for s in stores:
            await s.open()
        for i in range(300):
            await stores[0].create_run(run_id=f"c{i}", workflow_id=f"c{i}", workflow_name="wf",
                                       input=b"[]", now=1.0, owner=None,
                                       on_conflict="fail", on_reuse="fail")

        async def claimer(store: Store, worker: str) -> list[str]:
            got: list[str] = []
            while True:
                claims = await store.claim(worker, ["wf"], 7, now=2.0, real_now=time.time())
                if not claims:
                    return got
                got += [c.run_id for c in claims]

        results = await asyncio.gather(*(claimer(s, f"w{i}") for i, s in enumerate(stores)))
        everything = [r for got in results for r in got]
        assert len(everything) == len(set(everything)) == 300
        assert sum(1 for got in results if got) >= 2  # they really competed
        for s in stores:
            await s.close()

    run(main())


def test_purge_deletes_old_finished_runs_in_batches_one_purger_at_a_time(
        pg_url: str) -> None:
    import psycopg

    from duro.store._rules import lock_key
    from duro.store.postgres import PostgresStore

    async def main() -> None:
        store = open_store(pg_url)
        assert isinstance(store, PostgresStore)
        await store.open()
        for i in range(30):
            rec, _ = await store.create_run(run_id=f"p{i}", workflow_id=f"p{i}",
                                            workflow_name="wf", input=b"[]", now=100.0,
                                            owner="w", on_conflict="fail", on_reuse="fail")
            if i < 25:  # 25 finished (20 long ago, 5 recently), 5 still running
                ended = 200.0 if i < 20 else 900.0
                await store.save_heartbeat(rec.run_id, 1, b"{}", now=ended)
                await store.append(rec.run_id, 1, 1, [
                    NewEvent(kind="state_set", ts=ended, name="k", data=b"1"),
                    NewEvent(kind="run_completed", ts=ended, data=b"1")],
                    now=ended, status="completed", result=b"1", release=True)
        # Another worker holds the purge lock: this one backs off.
        async with await psycopg.AsyncConnection.connect(pg_url.split("?")[0]) as other:
            key = lock_key(f"duro.purge.{store.schema}")
            await other.execute("SELECT pg_advisory_lock(%s)", (key,))
            assert await store.purge_finished(before=500.0, limit=8) is None
            await other.execute("SELECT pg_advisory_unlock(%s)", (key,))
        batches = []
        while (n := await store.purge_finished(before=500.0, limit=8)):
            batches.append(n)
        assert batches == [8, 8, 4]
        left = {r.run_id: r.status.value for r in await store.list_runs(limit=100)}
        assert len(left) == 10 and sum(s == "running" for s in left.values()) == 5
        assert await store.load_history("p3") == []
        assert await store.get_state("p3", "k") is None
        assert await store.get_state("p22", "k") == b"1"
        await store.close()

    run(main())


def test_engine_start_and_result_from_a_client_only_process(pg_url: str) -> None:
    """A client-only engine starts runs a worker-engine (another store, as another process
    would) executes; the worker is woken by NOTIFY, not by polling."""

    @duro.step
    async def pg_double(x: int) -> int:
        return 2 * x

    @duro.workflow(name="pg_client_wf")
    async def pg_client_wf(x: int) -> int:
        return await pg_double(x) + 1

    async def main() -> None:
        async with duro.Engine(pg_url, workflows=[pg_client_wf], poll_interval=60,
                               lease=600) as worker_engine:
            assert worker_engine.worker is not None
            store: Any = worker_engine.store
            await wait_until(lambda: store._listener.listening.is_set(), timeout=10)
            async with duro.Engine(pg_url, worker=False) as client:
                started = time.monotonic()
                await client.start(pg_client_wf, 20, id="from-client")
                got = await asyncio.wait_for(_poll_result(client, "from-client"), 20)
                assert got == 41
                # poll_interval is 60 s and takeover checks come every lease/2 = 300 s:
                # only the notification can have woken the worker this fast.
                assert time.monotonic() - started < 10

    run(main())


async def _poll_result(engine: duro.Engine, workflow_id: str) -> Any:
    while True:
        info = await engine.get_handle(workflow_id).describe()
        if info.status == duro.RunStatus.COMPLETED:
            return await engine.get_handle(workflow_id).result(timeout=5)
        await asyncio.sleep(0.05)


def test_cli_db_migrate_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from duro.cli._main import run_cli

    assert run_cli(["db", "migrate", "--db", f"sqlite:///{tmp_path}/m.db"]) == 0
    assert "at schema version" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "m.db")
