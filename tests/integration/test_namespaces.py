"""Namespaces (issue 16, item 3) on both stores: a client of one namespace neither sees
nor changes a run or schedule of another (it is as if it did not exist, and the store is
left exactly as it was); a start whose workflow id another namespace holds is refused
without a word about that run; children, successors, copies and schedule runs stay in
their origin's namespace; listings page within a namespace through its own index; a
client of no namespace sees them all; bad names are refused; a database made before
namespaces keeps its runs and schedules in ``"default"``."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import duro
import duro.testing
from duro.errors import ChildWorkflowError, WorkflowAlreadyStartedError
from duro.schedules import ScheduleAlreadyExistsError, ScheduleNotFoundError
from duro.store import Message
from duro.store._rules import list_query
from tests.conftest import run, wait_until
from tests.integration.test_listing import _order, _pg, _rows, analyze, insert_runs, plan

A, B = "tenant-a", "tenant-b"


@duro.workflow(name="ns.waiter")
async def waiter(n: int) -> int:
    count = {"n": n}

    def bump(by: int) -> int:
        count["n"] += by
        return count["n"]

    duro.on_update("bump", bump)
    duro.on_query("count", lambda: count["n"])
    duro.set_state("count", n)
    await duro.wait_for_signal("go")
    return count["n"]


@duro.workflow(name="ns.looper")
async def looper(i: int) -> str:
    if i < 1:
        duro.continue_as_new(i + 1)
    return f"{duro.info().workflow_id} in {duro.info().namespace}"


@duro.workflow(name="ns.parent")
async def parent(taken_id: str) -> list[str]:
    kid = await duro.execute_child(looper, 0, id=f"{duro.info().workflow_id}-kid")
    try:
        await duro.execute_child(looper, 0, id=taken_id)
    except ChildWorkflowError as exc:
        return [kid, str(exc), str(exc.cause)]
    return [kid, "started", ""]


async def _store_state(engine: duro.Client, run_id: str) -> Any:
    """What a write to the run would change: its row, history and inbox."""
    record = await engine.store.get_run(run_id, run_id)
    assert record is not None
    return (record, await engine.store.load_history(run_id),
            await engine.store.read_inbox(run_id))


def _refused_quietly(exc: WorkflowAlreadyStartedError, *secrets: str) -> None:
    """The refusal says the id is taken, and nothing of the run that holds it."""
    assert type(exc) is WorkflowAlreadyStartedError  # not WorkflowIdTakenError: no name
    assert "is taken" in str(exc) and exc.run_id == "" and exc.workflow_name is None
    for secret in secrets:
        assert secret not in str(exc), (secret, str(exc))


def test_another_namespace_cannot_see_or_touch_a_run(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02, lookahead=0) as engine:
            a, b = engine.with_namespace(A), engine.with_namespace(B)
            handle = await a.start(waiter, 1, id="order-1",
                                   search_attributes={"customer": "acme"})
            assert await handle.wait_state("count", timeout=10) == 1

            async def suspended() -> bool:
                return (await handle.status()) == duro.RunStatus.SUSPENDED

            await wait_until(suspended)
            run_id = (await handle.describe()).run_id
            before = await _store_state(engine, run_id)

            calls: list[Callable[[], Awaitable[Any]]] = [
                b.get_handle("order-1").describe, b.get_handle(run_id).describe,
                b.get_handle("order-1", run_id).describe, b.get_handle("order-1").status,
                b.get_handle("order-1").history, b.get_handle("order-1").children,
                lambda: b.get_handle("order-1").result(timeout=5),
                lambda: b.get_handle("order-1").get_state("count"),
                lambda: b.signal("order-1", "go"), lambda: b.signal(run_id, "go"),
                lambda: b.update("order-1", "bump", 5, timeout=5),
                lambda: b.query("order-1", "count"), lambda: b.cancel("order-1"),
                lambda: b.terminate("order-1"), lambda: b.resume("order-1"),
                lambda: b.retry("order-1"), lambda: b.reset("order-1", to=1),
                lambda: b.fork("order-1"), lambda: b.fork("order-1", new_id="mine")]
            for call in calls:
                with pytest.raises(duro.RunNotFoundError):
                    await call()
            assert await b.list() == [] and await b.list(id_prefix="order") == []
            assert await b.list(search_attributes={"customer": "acme"}) == []
            assert (await b.list_page()).runs == []
            assert [r async for r in b.iter_runs(status="suspended")] == []
            assert all(q.suspended == 0 for q in await b.queues())
            # The store's own check, in the write's transaction (not only the client's
            # look-up before it).
            store, now = engine.store, engine.clock.now()
            writes: list[Callable[[], Awaitable[Any]]] = [
                lambda: store.send_message("order-1", "signal", "go", b"1", now=now,
                                           namespace=B),
                lambda: store.request_update("order-1", Message.update_request(
                    "bump", "u-1", b"[5]"), now=now, namespace=B),
                lambda: store.terminate("order-1", reason="x", now=now, namespace=B),
                lambda: store.resume_parked("order-1", now=now, namespace=B),
                lambda: store.copy_run(run_id, upto_seq=1, drop_ops=(), new_run_id="c-1",
                                       workflow_id="copy", close_source=True, reason="x",
                                       now=now, namespace=B)]
            for write in writes:
                with pytest.raises(duro.RunNotFoundError):
                    await write()
            assert await store.get_run("order-1", namespace=B) is None
            assert await store.find_update("order-1", "u-1", namespace=B) is None
            assert await _store_state(engine, run_id) == before, "B changed A's run"
            with pytest.raises(duro.RunNotFoundError):
                await b.get_handle("mine").describe()  # the refused fork wrote nothing

            # Its own namespace, and a client of every namespace, see and reach it.
            info = await a.get_handle("order-1").describe()
            assert (info.namespace, info.to_json()["namespace"]) == (A, A)
            assert [r.run_id for r in await a.list(search_attributes={"customer": "acme"})] \
                == [run_id]
            assert any(q.suspended == 1 for q in await a.queues())
            everyone = engine.with_namespace(None)
            assert (await everyone.get_handle("order-1").describe()).run_id == run_id
            assert await engine.list() == []  # the engine's own client: "default"
            assert await a.query("order-1", "count") == 1
            assert await a.update("order-1", "bump", 2, timeout=10) == 3
            await everyone.signal("order-1", "go")
            assert await handle.result(timeout=10) == 3

    run(main())


def test_a_start_whose_id_another_namespace_holds_is_refused_without_a_leak(
        any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Client(any_db_url, namespace=A) as a:
            b = a.with_namespace(B)
            held = await a.start("ns.secret", id="shared", dedup_key="k")
            run_id = held.run_id or ""
            before = await _store_state(a, run_id)
            secrets = (run_id, A, "ns.secret", "pending")
            attempts: list[Callable[[], Awaitable[Any]]] = [
                lambda: b.start("ns.other", id="shared"),
                lambda: b.start("ns.secret", id="shared"),
                lambda: b.start("ns.secret", id="shared", on_conflict="fail"),
                lambda: b.signal_with_start("ns.secret", id="shared", signal="s"),
                lambda: b.signal_with_start("ns.secret", id="shared", signal="s",
                                            on_reuse="allow"),
                lambda: b.update_with_start("ns.secret", id="shared", update="u",
                                            timeout=1)]
            for attempt in attempts:
                with pytest.raises(WorkflowAlreadyStartedError) as refused:
                    await attempt()
                _refused_quietly(refused.value, *secrets)
            with pytest.raises(WorkflowAlreadyStartedError) as refused:
                await b.start("ns.secret", id="other", dedup_key="k")
            _refused_quietly(refused.value, *secrets, "shared")
            assert await _store_state(a, run_id) == before
            assert await b.list() == []

            # Once it ended, the id is free to another namespace with on_reuse="allow"
            # only (the one policy whose answer says nothing of how the run ended).
            await a.terminate("shared")
            for reuse in ("use_existing", "allow_failed", "fail"):
                with pytest.raises(WorkflowAlreadyStartedError) as refused:
                    await b.start("ns.secret", id="shared", on_reuse=reuse)
                _refused_quietly(refused.value, *secrets, "terminated")
            mine = await b.start("ns.secret", id="shared", on_reuse="allow")
            assert (await mine.describe()).namespace == B
            # Each namespace sees its own run of the id.
            theirs = await a.get_handle("shared").describe()
            assert (theirs.run_id, theirs.status) == (run_id, duro.RunStatus.TERMINATED)
            assert (await b.get_handle("shared").describe()).run_id == mine.run_id
            with pytest.raises(duro.RunNotFoundError):
                await a.signal("shared", "s")  # B's live run: not A's to signal
            # A start of no namespace sees every run: it gets B's live one.
            everyone = a.with_namespace(None)
            assert (await everyone.start("ns.secret", id="shared")).run_id == mine.run_id
            fresh = await everyone.start("ns.secret", id="fresh")
            assert (await fresh.describe()).namespace == "default"

            # A debounce key folds starts of one namespace only.
            first = await a.start("ns.secret", 1, debounce_key="d", debounce=60)
            second = await b.start("ns.secret", 2, debounce_key="d", debounce=60)
            again = await a.start("ns.secret", 3, debounce_key="d", debounce=60)
            assert again.run_id == first.run_id != second.run_id
            assert (await b.get_handle(second.workflow_id).history())[0].data == {
                "args": [2], "kwargs": {}}

    run(main())


def test_children_successors_and_copies_stay_in_their_namespace(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02, lookahead=0) as engine:
            a, b = engine.with_namespace(A), engine.with_namespace(B)
            taken = await b.start(waiter, 0, id="b-owns-this")
            handle = await a.start(parent, "b-owns-this", id="p")
            kid, refusal, cause = await handle.result(timeout=20)
            assert kid == f"p-kid in {A}"  # duro.info() of the child's successor
            assert "is taken" in cause and taken.run_id not in refusal + cause
            assert B not in refusal + cause and "ns.waiter" not in refusal + cause
            chain = await a.list(id_prefix="p-kid")
            assert len(chain) == 2 and {r.namespace for r in chain} == {A}  # one CAN
            assert {r.status for r in chain} == {duro.RunStatus.COMPLETED,
                                                 duro.RunStatus.CONTINUED_AS_NEW}
            # A replay reads the namespace from the recorded run_started, as a worker
            # taking the run up from the store does; a start runs in its client's.
            history = await a.get_handle("p-kid").history()
            replayed = duro.testing.replay(looper, history, workflow_id="p-kid")
            assert replayed.result == f"p-kid in {A}"
            assert await (await b.start(looper, 1, id="direct")).result(timeout=10) == \
                f"direct in {B}"
            assert await (await engine.start(looper, 1, id="plain")).result(timeout=10) == \
                "plain in default"
            # The child and its successor (continue-as-new keeps the parent).
            assert [c.workflow_id for c in await handle.children()] == ["p-kid", "p-kid"]
            assert await b.list(id_prefix="p") == []
            with pytest.raises(duro.RunNotFoundError):
                await b.get_handle("p-kid").describe()
            # Retry, reset and fork copy a run into its own namespace.
            forked = await a.fork("p-kid", new_id="p-kid-copy")
            assert (await forked.describe()).namespace == A
            reset = await a.reset("p", to=1)
            assert (await reset.describe()).namespace == A
            everyone = engine.with_namespace(None)
            by_admin = await everyone.fork("p-kid", new_id="p-kid-admin")
            assert (await by_admin.describe()).namespace == A  # the source's, not "default"
            with pytest.raises(WorkflowAlreadyStartedError) as refused:
                await everyone.fork("p-kid", new_id="b-owns-this")  # live in B
            _refused_quietly(refused.value, taken.run_id or "", B)

    run(main())


def test_schedules_are_scoped_and_their_runs_stamped(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Client(any_db_url, namespace=A) as a:
            b = a.with_namespace(B)
            created = await a.schedules.create("nightly", "ns.job", every=3600,
                                               overlap="allow_all")
            assert created.namespace == A and created.to_json()["namespace"] == A
            for call in (lambda: b.schedules.get("nightly"),
                         lambda: b.schedules.pause("nightly"),
                         lambda: b.schedules.resume("nightly"),
                         lambda: b.schedules.trigger("nightly"),
                         lambda: b.schedules.backfill("nightly", 0, 7200),
                         lambda: b.schedules.delete("nightly")):
                with pytest.raises(ScheduleNotFoundError):
                    await call()
            assert await b.schedules.list() == []
            with pytest.raises(ScheduleAlreadyExistsError):
                await b.schedules.create("nightly", "ns.job", every=60)
            after = await a.schedules.get("nightly")
            assert (after.paused, after.fired, after.updated_at) == (
                created.paused, created.fired, created.updated_at)
            assert await b.list() == []

            triggered = await a.schedules.trigger("nightly")
            filled = await a.schedules.backfill("nightly", 0, 7200)
            assert len(filled) == 3
            # A worker fires ticks for every namespace; the runs are the schedule's.
            record = await a.store.get_schedule("nightly")
            assert record is not None and record.next_fire_at is not None
            fired = await a.store.fire_schedule(
                "nightly", expected_next=record.next_fire_at,
                next_fire_at=record.next_fire_at + 3600, ticks=[record.next_fire_at],
                missed=0, now=record.next_fire_at)
            assert fired is not None and len(fired.started) == 1
            assert fired.started[0].namespace == A
            ids = {triggered.workflow_id, fired.started[0].workflow_id,
                   *(h.workflow_id for h in filled)}
            assert {r.workflow_id for r in await a.list()} == ids
            assert {r.namespace for r in await a.with_namespace(None).list()} == {A}
            everyone = a.with_namespace(None)
            assert [s.schedule_id for s in await everyone.schedules.list()] == ["nightly"]
            await b.with_namespace(A).schedules.delete("nightly")
            assert await everyone.schedules.list() == []

    run(main())


def _namespace_rows(url: str, rows: list[Any]) -> None:
    """Put every third bulk run in tenant-a, every third in tenant-b."""
    a_ids = [(r[0],) for i, r in enumerate(rows) if i % 3 == 0]
    b_ids = [(r[0],) for i, r in enumerate(rows) if i % 3 == 1]
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.executemany(f"UPDATE runs SET namespace = '{A}' WHERE run_id = ?", a_ids)
            conn.executemany(f"UPDATE runs SET namespace = '{B}' WHERE run_id = ?", b_ids)
        return
    with _pg(url) as conn:
        for name, ids in ((A, a_ids), (B, b_ids)):
            conn.execute("UPDATE runs SET namespace = %s WHERE run_id = ANY(%s)",
                         (name, [i for (i,) in ids]))


def test_a_namespace_lists_its_runs_page_by_page(any_db_url: str) -> None:
    rows = _rows(900, tie=5)

    async def main() -> None:
        async with duro.Client(any_db_url) as client:
            insert_runs(any_db_url, rows)
            _namespace_rows(any_db_url, rows)
            a = client.with_namespace(A)
            mine = [r for i, r in enumerate(rows) if i % 3 == 0]

            async def ids(c: duro.Client, **where: Any) -> list[str]:
                return [r.run_id async for r in c.iter_runs(page_size=7, **where)]

            assert await ids(a) == _order(mine)
            assert await ids(a, status="failed") == _order([r for r in mine
                                                              if r[3] == "failed"])
            assert await ids(a, name="bulk.a") == _order([r for r in mine
                                                            if r[2] == "bulk.a"])
            assert await ids(client) == _order([r for i, r in enumerate(rows) if i % 3 == 2])
            assert await ids(client.with_namespace(None)) == _order(rows)
            assert await ids(client.with_namespace("nobody")) == []
            page = await a.list_page(page_size=100)
            assert [r.run_id for r in page.runs] == _order(mine)[:100]
            assert {r.namespace for r in page.runs} == {A}
            assert page.next_cursor is not None
            rest = await a.list_page(page_size=1000, cursor=page.next_cursor)
            assert [r.run_id for r in rest.runs] == _order(mine)[100:]
            assert rest.next_cursor is None
            # A namespace's page is one range of runs_namespace (on SQLite read backwards,
            # no sort), on enough runs for the planner to care.
            more = _rows(30_000, start=900)
            insert_runs(any_db_url, more)
            _namespace_rows(any_db_url, more)
            analyze(any_db_url)
            name, params = list_query(status=None, name=None, created_after=None,
                                      created_before=None, id_prefix=None, attributes=None,
                                      after=(1_000_100.0, "run-5"), limit=101, namespace=A)
            assert name == "list_runs_by_namespace"
            shown = plan(any_db_url, name, params)
            if any_db_url.startswith("sqlite:///"):
                assert "USING INDEX runs_namespace (namespace=? AND listed_at>? AND " \
                    "(listed_at,run_id)<(?,?))" in shown, shown
                assert "TEMP B-TREE" not in shown
            else:
                # The range, not the table: PostgreSQL may sort a range it expects small
                # (since runs_namespace is partial, its estimates are of that range).
                assert "on runs_namespace" in shown or "using runs_namespace" in shown, shown
                assert "Seq Scan" not in shown, shown

    run(main(), timeout=120)


@pytest.mark.parametrize("bad", ["", " ", "a b", "x" * 65, "ünï", "a\n", "a/b", 5, "a\x1b"])
def test_bad_namespace_names_are_refused(db_url: str, bad: Any) -> None:
    with pytest.raises(duro.InvalidArgumentError, match="namespace"):
        duro.Client(db_url, namespace=bad)

    async def main() -> None:
        async with duro.Client(db_url) as client:
            with pytest.raises(duro.InvalidArgumentError, match="namespace"):
                client.with_namespace(bad)
            assert await client.with_namespace(None).list() == []

    run(main())


def test_a_view_shares_its_client_and_closes_nothing(db_url: str) -> None:
    async def main() -> None:
        client = duro.Client(db_url, namespace=A)
        view = client.with_namespace(B)
        # Every attribute a client has, a view has (with_namespace keeps up with __init__).
        assert set(vars(client)) <= set(vars(view)) and view.store is client.store
        assert repr(view).endswith("namespace='tenant-b'>")
        with pytest.raises(duro.DuroError, match="not open"):
            await view.list()
        async with client:
            async with view:  # open while its client is; closing it closes nothing
                await view.start("ns.any", id="v-1")
            assert [r.namespace for r in await view.list()] == [B]
            assert view.with_namespace(A).namespace == A
        with pytest.raises(duro.DuroError, match="not open"):
            await view.list()

    run(main())


def _database_before_namespaces(url: str) -> None:
    """A store as duro made it before namespaces: every migration before them, a run and
    a schedule written with the columns of then."""
    version = next(v for v, name, _ in _migrations(url) if name == "namespaces")
    older = [(v, name, sql) for v, name, sql in _migrations(url) if v < version]
    run_row = ("old-run", "old-wf", "ns.old", "pending", 1.0, 1.0)
    run_sql = ("INSERT INTO runs (run_id, workflow_id, workflow_name, status, created_at, "
               "updated_at) VALUES ({0}, {0}, {0}, {0}, {0}, {0})")
    schedule_sql = ("INSERT INTO schedules (schedule_id, workflow_name, input, every, "
                    "created_at, updated_at) VALUES ('old-s', 'ns.old', {0}, 60, 1, 1)")
    if url.startswith("sqlite:///"):
        from duro.store.sqlite._store import _split_statements

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("CREATE TABLE duro_migrations (version INTEGER PRIMARY KEY, "
                         "name TEXT NOT NULL, applied_at REAL NOT NULL)")
            for v, name, sql in older:
                for statement in _split_statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO duro_migrations VALUES (?, ?, 0)", (v, name))
            conn.execute(run_sql.format("?"), run_row)
            conn.execute(schedule_sql.format("?"), (b"{}",))
        return
    from urllib.parse import parse_qs, urlparse

    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path = "{schema}"')
        conn.execute("CREATE TABLE duro_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        for v, name, sql in older:
            conn.execute(sql.encode())
            conn.execute("INSERT INTO duro_migrations VALUES (%s, %s, 0)", (v, name))
        conn.execute(run_sql.format("%s"), run_row)
        conn.execute(schedule_sql.format("%s"), (b"{}",))


def _migrations(url: str) -> list[tuple[int, str, str]]:
    if url.startswith("sqlite:///"):
        from duro.store.sqlite._sql import migrations
    else:
        from duro.store.postgres._sql import migrations
    return migrations()


def test_a_database_from_before_namespaces_keeps_its_runs_in_default(any_db_url: str) -> None:
    _database_before_namespaces(any_db_url)

    async def main() -> None:
        async with duro.Client(any_db_url) as client:  # migrates
            info = await client.get_handle("old-wf").describe()
            assert (info.run_id, info.namespace) == ("old-run", "default")
            assert [r.run_id for r in await client.list()] == ["old-run"]
            assert (await client.schedules.get("old-s")).namespace == "default"
            other = client.with_namespace(A)
            assert await other.list() == [] and await other.schedules.list() == []
            with pytest.raises(duro.RunNotFoundError):
                await other.get_handle("old-wf").describe()

    run(main())


def test_the_cli_works_in_the_namespace_it_is_given(
        db_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from duro.cli._main import run_cli

    async def seed() -> None:
        async with duro.Client(db_url, namespace=A) as a:
            await a.start("cli.thing", id="in-a")
            await a.with_namespace(B).start("cli.thing", id="in-b")
            await a.schedules.create("a-sched", "cli.thing", every=60)

    run(seed())

    def ls(*args: str) -> list[str]:
        assert run_cli(["ls", "--db", db_url, "--json", *args]) == 0
        return sorted(r["workflow_id"] for r in json.loads(capsys.readouterr().out))

    assert ls() == []  # "default"
    assert ls("--namespace", A) == ["in-a"]
    assert ls("--all-namespaces") == ["in-a", "in-b"]
    monkeypatch.setenv("DURO_NAMESPACE", B)
    assert ls() == ["in-b"]
    assert run_cli(["show", "--db", db_url, "in-a"]) == 1
    assert "no run with workflow id 'in-a'" in capsys.readouterr().err
    assert run_cli(["signal", "--db", db_url, "in-a", "go"]) == 1
    capsys.readouterr()
    assert run_cli(["schedule", "ls", "--db", db_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run_cli(["--namespace", A, "schedule", "ls", "--db", db_url, "--json"]) == 0
    assert [s["schedule_id"] for s in json.loads(capsys.readouterr().out)] == ["a-sched"]
    assert run_cli(["ls", "--db", db_url, "--namespace", "no such"]) == 2
    assert "namespace" in capsys.readouterr().err
    assert run_cli(["ls", "--db", db_url, "--namespace", A, "--all-namespaces"]) == 2
    capsys.readouterr()
