"""Search attributes on both stores (issue 15, item 7): given at a start, upserted from
workflow code (recorded once, replay-safe), indexed with their types, listed and
filtered, refused when bad (nothing stored), carried or folded by continue-as-new and
copies, and deleted with their runs."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

import duro
from duro._history import EventKind, NewEvent
from duro.store import EventRecord
from duro.testing import replay
from duro.workflow._instance import NullHost, RunInstance
from tests.conftest import run, wait_until


@duro.step(name="sa.noop")
async def noop() -> int:
    return 1


@duro.workflow(name="sa.order")
async def order(amount: int) -> str:
    duro.upsert_search_attributes({"stage": "paid", "amount": amount})
    await noop()
    duro.upsert_search_attributes({"stage": "shipped", "customer": None})
    return "ok"


@duro.workflow(name="sa.waiting")
async def waiting() -> str:
    duro.upsert_search_attributes({"stage": "waiting"})
    await duro.wait_for_signal("go")
    duro.upsert_search_attributes({"stage": "done"})
    await noop()
    duro.upsert_search_attributes({"n": None})  # only removes
    return "ok"


BAD: list[tuple[dict[str, Any], str]] = [
    ({"bad key": 1}, "bad key"),
    ({"ok": [1, 2]}, "ok"),
    ({"amount": float("nan")}, "amount"),
    ({"big": 2**64}, "big"),
    ({"k" * 65: 1}, "k" * 50),
]


@duro.workflow(name="sa.bad")
async def bad(which: int) -> str:
    await noop()
    duro.upsert_search_attributes({"ok": "fine", **BAD[which][0]})
    return "unreachable"


@duro.workflow(name="sa.looping")
async def looping(n: int) -> int:
    if n == 0:
        duro.upsert_search_attributes({"round": 0})
        duro.continue_as_new(1)
    return n


@duro.workflow(name="sa.parent")
async def parent() -> str:
    return await duro.execute_child(order, 7, id="sa-child",
                                    search_attributes={"parent": "sa-parent"})


@duro.workflow(name="sa.queried")
async def queried() -> str:
    def sneaky() -> str:
        duro.upsert_search_attributes({"asked": True})
        return "answered"

    duro.on_query("sneaky", sneaky)
    await duro.wait_for_signal("go")
    return "ok"


def _kinds(events: list[duro.Event]) -> list[str]:
    return [e.kind for e in events]


def test_attributes_at_start_and_upserted_are_listed_and_filtered_by_type(
        any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            first = await engine.start(order, 12, id="o-1", search_attributes={
                "customer": "acme", "amount": 12, "vip": True, "score": 0.5})
            assert await first.result(timeout=20) == "ok"
            second = await engine.start(order, 13, id="o-2")
            assert await second.result(timeout=20) == "ok"
            plain = await engine.start(noop_wf, id="o-3")
            await plain.result(timeout=20)

            info = await first.describe()
            assert info.search_attributes == {"amount": 12, "stage": "shipped", "vip": True,
                                              "score": 0.5}
            assert type(info.search_attributes["amount"]) is int
            assert info.to_json()["search_attributes"] == dict(info.search_attributes)
            listed = {r.workflow_id: r.search_attributes for r in await engine.list()}
            assert listed == {"o-1": info.search_attributes,
                              "o-2": {"amount": 13, "stage": "shipped"}, "o-3": {}}

            async def ids(**where: Any) -> list[str]:
                return [r.workflow_id for r in await engine.list(search_attributes=where)]

            assert await ids(stage="shipped") == ["o-2", "o-1"]
            assert await ids(amount=12) == ["o-1"]
            assert await ids(amount=12.0) == ["o-1"]  # 12 == 12.0, as in Python
            assert await ids(amount="12") == []  # a string is another value
            assert await ids(vip=1) == []  # and a bool is not an int
            assert await ids(vip=True, stage="shipped") == ["o-1"]  # ANDed
            assert await ids(vip=True, stage="paid") == []
            assert await ids(customer="acme") == []  # removed by the second upsert
            assert await ids(score=0.5) == ["o-1"]
            assert [r.workflow_id for r in await engine.list(
                status="completed", name="sa.order", search_attributes={"stage": "shipped"},
                id_prefix="o-")] == ["o-2", "o-1"]

            history = await first.history()
            assert _kinds(history).count(EventKind.SEARCH_ATTRIBUTES_UPSERTED) == 2
            assert history[0].meta["search_attributes"] == {
                "customer": "acme", "amount": 12, "vip": True, "score": 0.5}

    run(main())


@duro.workflow(name="sa.noop_wf")
async def noop_wf() -> int:
    return await noop()


def test_replay_does_not_record_upserts_again(any_db_url: str) -> None:
    """A worker that replays the history (a new engine) and the read-only replay both
    find the upsert recorded and do not record it twice."""

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(waiting, id="w-1", search_attributes={"n": 1})

            async def recorded() -> bool:
                kinds = _kinds(await handle.history())
                return EventKind.SEARCH_ATTRIBUTES_UPSERTED in kinds

            await wait_until(recorded)
        # A fresh worker: the run is replayed from its history, then goes on live.
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = engine.get_handle("w-1")
            await engine.signal("w-1", "go", None)
            assert await handle.result(timeout=20) == "ok"
            events = await handle.history()
            upserts = [e.meta["attributes"] for e in events
                       if e.kind == EventKind.SEARCH_ATTRIBUTES_UPSERTED]
            assert upserts == [{"stage": "waiting"}, {"stage": "done"}, {"n": None}]
            assert (await handle.describe()).search_attributes == {"stage": "done"}
            assert await engine.list(search_attributes={"n": 1}) == []
            assert replay(waiting, events).status == "completed"

            # The worker's own replay path, with a host that keeps what is recorded.
            records = [EventRecord(run_id="r", seq=e.seq, kind=e.kind,
                                   ts=e.time.timestamp(), op=e.op, name=e.name,
                                   data=None if e.data is None else orjson.dumps(e.data),
                                   meta=orjson.dumps(e.meta) if e.meta else None)
                       for e in events[:-1]]  # up to the last upsert, not the end
            host = _Recording()
            inst = RunInstance(workflow=waiting, run_id="r", workflow_id="w-1", host=host)
            try:
                inst.replay(records, {})
                assert inst.park_error is None and inst.main is not None
                assert inst.main.done() and inst.main.result() == "ok"
            finally:
                inst.close()
            assert host.recorded == []

    run(main())


class _Recording(NullHost):
    def __init__(self) -> None:
        self.recorded: list[NewEvent] = []

    def record(self, inst: RunInstance, event: NewEvent) -> None:
        self.recorded.append(event)


def test_a_live_instance_records_each_upsert_once() -> None:
    """The check above can fail: past the end of the history the instance records."""
    host = _Recording()
    start = EventRecord(run_id="r", seq=0, kind=EventKind.RUN_STARTED, ts=1.0, op=None,
                        name="sa.waiting", data=b'{"args": [], "kwargs": {}}', meta=None)
    inst = RunInstance(workflow=waiting, run_id="r", workflow_id="w", host=host)
    try:
        inst.replay([start], {})
    finally:
        inst.close()
    assert [e.kind for e in host.recorded] == [EventKind.SEARCH_ATTRIBUTES_UPSERTED]


@pytest.mark.parametrize("which", range(len(BAD)))
def test_bad_attributes_are_refused_and_nothing_is_stored(any_db_url: str,
                                                          which: int) -> None:
    attributes, key = BAD[which]

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            with pytest.raises(duro.InvalidArgumentError, match=key):
                await engine.start(order, 1, id="bad-1", search_attributes=attributes)
            with pytest.raises(duro.InvalidArgumentError, match=key):
                await engine.signal_with_start(order, 1, id="bad-1", signal="s",
                                               search_attributes=attributes)
            assert await engine.list() == []
            # From workflow code: the call raises, the run fails, nothing is recorded.
            handle = await engine.start(bad, which, id="bad-2")
            with pytest.raises(duro.WorkflowFailedError, match="InvalidArgumentError"):
                await handle.result(timeout=20)
            events = await handle.history()
            assert EventKind.SEARCH_ATTRIBUTES_UPSERTED not in _kinds(events)
            assert (await handle.describe()).search_attributes == {}
            assert await engine.list(search_attributes={"ok": "fine"}) == []

    run(main())


def test_listing_filters_are_checked_before_a_read(db_url: str) -> None:
    async def main() -> None:
        async with duro.Client(db_url) as client:
            for where in ({"k": None}, {"bad key": 1}, {"k": [1]}):
                with pytest.raises(duro.InvalidArgumentError):
                    await client.list(search_attributes=where)
                with pytest.raises(duro.InvalidArgumentError):
                    client.iter_runs(search_attributes=where)

    run(main())


def test_children_continue_as_new_and_copies_keep_their_attributes(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            # A child started with attributes.
            assert await (await engine.start(parent, id="sa-parent")).result(timeout=20) == "ok"
            child = await engine.get_handle("sa-child").describe()
            assert child.search_attributes == {"parent": "sa-parent", "amount": 7,
                                               "stage": "shipped"}
            assert [r.workflow_id for r in await engine.list(
                search_attributes={"parent": "sa-parent"})] == ["sa-child"]

            # Continue-as-new: the successor keeps them (as it keeps published state).
            looped = await engine.start(looping, 0, id="sa-loop", search_attributes={"k": "v"})
            assert await looped.result(timeout=20) == 1
            runs = await engine.list(name="sa.looping")
            assert [r.status.value for r in runs] == ["completed", "continued_as_new"]
            assert [r.search_attributes for r in runs] == [{"k": "v", "round": 0}] * 2
            latest = await engine.list(search_attributes={"k": "v", "round": 0},
                                       status="completed")
            assert [r.run_id for r in latest] == [runs[0].run_id]

            # Reset and fork: the copy is indexed with what its copied history records.
            first = await engine.start(order, 5, id="sa-copy",
                                       search_attributes={"origin": "start"})
            await first.result(timeout=20)
            events = await first.history()
            at = next(e.seq for e in events if e.kind == EventKind.STEP_COMPLETED)
            fork = await engine.fork("sa-copy", to=at, new_id="sa-fork")
            assert (await fork.describe()).search_attributes == {
                "origin": "start", "stage": "paid", "amount": 5}
            assert await fork.result(timeout=20) == "ok"
            assert (await fork.describe()).search_attributes == {
                "origin": "start", "stage": "shipped", "amount": 5}
            reset = await engine.reset("sa-copy", to=1)
            assert (await reset.describe()).search_attributes == {"origin": "start"}
            await reset.result(timeout=20)
            assert sorted(r.workflow_id for r in await engine.list(
                search_attributes={"origin": "start", "stage": "shipped"})) == [
                "sa-copy", "sa-copy", "sa-fork"]

    run(main())


def test_deleted_runs_take_their_attributes_along(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            done = await engine.start(order, 3, id="gone", search_attributes={"t": "x"})
            await done.result(timeout=20)
            live = await engine.start(waiting, id="kept", search_attributes={"t": "x"})
            await wait_until(lambda: _has_attribute(engine, "kept", "stage"))
            gone_id = (await done.describe()).run_id
            store: Any = engine.store
            assert await store.purge_finished(before=time.time() + 60) == 1
            assert await engine.store.search_attributes([gone_id]) == {}
            assert [r.workflow_id for r in await engine.list(
                search_attributes={"t": "x"})] == ["kept"]
            assert [r.workflow_id for r in await engine.list(
                search_attributes={"stage": "shipped"})] == []
            await live.signal("go", None)
            await live.result(timeout=20)

    run(main())


async def _has_attribute(engine: duro.Engine, workflow_id: str, key: str) -> bool:
    info = await engine.get_handle(workflow_id).describe()
    return key in info.search_attributes


def test_a_query_cannot_upsert(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, poll_interval=0.02) as engine:
            handle = await engine.start(queried, id="q-1")
            with pytest.raises(duro.QueryError, match="must not upsert"):
                await engine.query("q-1", "sneaky")
            await handle.signal("go", None)
            assert await handle.result(timeout=20) == "ok"
            assert EventKind.SEARCH_ATTRIBUTES_UPSERTED not in _kinds(await handle.history())
            assert (await handle.describe()).search_attributes == {}

    run(main())
