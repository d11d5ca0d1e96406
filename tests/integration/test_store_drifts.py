"""Where the SQLite and PostgreSQL stores used to disagree, both now do the same (issue 15,
item 1: each rule is written once, in duro/store/_rules.py and duro/store/_base/).

Each test names the behaviour chosen, and runs on both stores.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import duro
from duro._history import EventKind
from duro._messages import MessageKind
from duro.errors import DataRejectedError, StoreError, WorkflowIdTakenError
from duro.store import Message, NewEvent, RunStatus, Store, open_store
from duro.store._records import Placement, QueueConfig, TaskRecord
from tests.conftest import run


async def _store(url: str) -> Store:
    store = open_store(url)
    await store.open()
    return store


async def _start(store: Store, wid: str, *, name: str = "wf", owner: str | None = None,
                 placement: Placement | None = None, now: float = 100.0) -> Any:
    record, created = await store.create_run(
        run_id=f"run-{wid}", workflow_id=wid, workflow_name=name, input=b'{"args":[]}',
        now=now, owner=owner, on_conflict="use_existing", on_reuse="use_existing",
        placement=placement)
    assert created
    return record


def test_a_dead_workers_runs_of_other_code_stay_for_a_worker_that_has_it(
        any_db_url: str) -> None:
    """Was: SQLite took them over too (bumping their epoch and death count) and released
    them to pending, so the worker that later ran them saw a plain claim, not a take-over:
    a run that kills its workers was never judged a suspect. Now, as PostgreSQL did, a
    claimer takes over only runs of its own workflows; the others keep their count for
    the take-over by a worker with their code."""
    async def main() -> None:
        store = await _store(any_db_url)
        await store.register_worker("dead", "h", 1, real_now=time.time() - 100, lease=1)
        await store.register_worker("alive", "h", 2, real_now=time.time(), lease=60)
        mine = await _start(store, "mine", name="a", owner="dead")
        theirs = await _start(store, "theirs", name="b", owner="dead")
        claims = await store.claim("alive", ["a"], 10, now=200, real_now=time.time())
        assert [(c.run_id, c.recoveries) for c in claims] == [(mine.run_id, 1)]
        left = await store.get_run("theirs")
        assert left is not None and (left.status, left.owner, left.epoch) == (
            RunStatus.RUNNING, "dead", 1)
        claims = await store.claim("other", ["b"], 10, now=200, real_now=time.time())
        assert [(c.run_id, c.recoveries) for c in claims] == [(theirs.run_id, 1)]
        await store.close()

    run(main())


def test_a_dead_workers_step_tasks_go_back_whatever_the_claim_takes(any_db_url: str) -> None:
    """Was: SQLite put a dead worker's step tasks back in their queue only when the claim
    that found the worker dead had room left for runs. Now every claim does (as
    PostgreSQL did)."""
    async def main() -> None:
        store = await _store(any_db_url)
        await store.register_worker("dead", "h", 1, real_now=time.time(), lease=60)
        await store.register_worker("alive", "h", 2, real_now=time.time(), lease=60)
        owner = await _start(store, "parent", owner="alive")
        task = TaskRecord(task_id=f"{owner.run_id}:1:1", run_id=owner.run_id, op=1,
                          attempt=1, step="s", queue="q", args=None, info=None)
        await store.enqueue_task(task, now=100)
        assert [t.task_id for t in await store.claim_tasks(
            "dead", ["q"], ["s"], 5, real_now=time.time())] == [task.task_id]
        await store.register_worker("dead", "h", 1, real_now=time.time() - 100, lease=1)
        await _start(store, "ready")
        # One run is ready and the claim has room for one: nothing left for take-overs.
        claims = await store.claim("alive", ["wf"], 1, now=200, real_now=time.time())
        assert [c.workflow_id for c in claims] == ["ready"]
        assert [t.task_id for t in await store.claim_tasks(
            "alive", ["q"], ["s"], 5, real_now=time.time())] == [task.task_id]
        await store.close()

    run(main())


def test_a_run_held_by_a_worker_whose_lease_expired_is_due_now(any_db_url: str) -> None:
    """Was: only PostgreSQL's next_wake_at answered 0 (due now) when a worker whose lease
    expired owns running runs of these workflows, so SQLite workers found them only at
    their periodic take-over check. Now both do."""
    async def main() -> None:
        store = await _store(any_db_url)
        await store.register_worker("w", "h", 1, real_now=time.time(), lease=60)
        await _start(store, "held", owner="w")
        await _start(store, "later", placement=Placement(start_at=500.0))
        assert await store.next_wake_at(["wf"]) == 500.0
        await store.register_worker("w", "h", 1, real_now=time.time() - 100, lease=1)
        assert await store.next_wake_at(["wf"]) == 0
        assert await store.next_wake_at(["other"]) is None
        await store.close()

    run(main())


def test_a_copy_into_a_workflow_id_of_another_workflow_is_refused_before_writing(
        any_db_url: str) -> None:
    """Was: PostgreSQL checked first and raised WorkflowAlreadyStartedError; SQLite closed
    the source first (its savepoint undid that) and raised WorkflowIdTakenError. Now both
    check everything before writing, with the start's own rule (check_existing):
    WorkflowIdTakenError for a live run of other code."""
    async def main() -> None:
        store = await _store(any_db_url)
        source = await _start(store, "src")
        await _start(store, "taken", name="other")
        with pytest.raises(WorkflowIdTakenError):
            await store.copy_run(source.run_id, upto_seq=1, drop_ops=[], new_run_id="copy",
                                 workflow_id="taken", close_source=True, reason="reset",
                                 now=200)
        with pytest.raises(duro.WorkflowAlreadyStartedError) as info:
            await store.copy_run(source.run_id, upto_seq=1, drop_ops=[], new_run_id="copy",
                                 workflow_id="src", close_source=False, reason="fork",
                                 now=200)
        assert not isinstance(info.value, WorkflowIdTakenError)
        after = await store.get_run("src")
        assert after is not None and after.status == RunStatus.PENDING  # untouched
        await store.close()

    run(main())


def test_signal_with_start_returns_the_run_as_the_message_left_it(any_db_url: str) -> None:
    """Was: SQLite returned the run as read before the message went in (a suspended run
    still suspended), PostgreSQL the run after it (woken). Now both return it after."""
    async def main() -> None:
        store = await _store(any_db_url)
        record = await _start(store, "sleepy", owner="w")
        await store.append(record.run_id, 1, 1, [], now=101, status="suspended",
                           wake_at=10_000.0, release=True)
        got, created = await store.create_run(
            run_id="unused", workflow_id="sleepy", workflow_name="wf", input=b"[]", now=102,
            owner=None, on_conflict="use_existing", on_reuse="use_existing",
            message=Message(kind=MessageKind.SIGNAL, name="go", data=b"[]"))
        assert not created and got.run_id == record.run_id
        assert got.status == RunStatus.PENDING and got.wake_at == 102
        await store.close()

    run(main())


def test_limited_queues_are_claimed_in_name_order(any_db_url: str) -> None:
    """Was: SQLite went through limited queues in the order they were created, PostgreSQL
    by name (claimers lock queue rows in one order). Now both by name."""
    async def main() -> None:
        store = await _store(any_db_url)
        for name in ("zeta", "alpha"):
            await store.upsert_queue(QueueConfig(name=name, concurrency=5), now=1)
            await _start(store, f"in-{name}", placement=Placement(queue=name))
        claims = await store.claim("w", ["wf"], 1, now=200, real_now=time.time())
        assert [c.queue for c in claims] == ["alpha"]
        await store.close()

    run(main())


def test_an_outcome_recorded_twice_is_a_store_fault_not_a_refused_value(
        any_db_url: str) -> None:
    """Was: SQLite turned the outcome index's violation (an operation's outcome already
    recorded: the writer's instance is out of step with the store) into
    DataRejectedError, which parks the run; PostgreSQL into StoreError, which makes the
    worker reload the run from its history. Now both say StoreError: reloading puts the
    instance back in step; nothing about the value is wrong."""
    async def main() -> None:
        store = await _store(any_db_url)
        record = await _start(store, "twice", owner="w")
        done = NewEvent(kind=EventKind.STEP_COMPLETED, ts=101.0, op=1, name="s", data=b"1")
        await store.append(record.run_id, 1, 1, [done], now=101)
        with pytest.raises(StoreError) as info:
            await store.append(record.run_id, 1, 2, [done], now=102)
        assert not isinstance(info.value, DataRejectedError)
        assert [e.seq for e in await store.load_history(record.run_id)] == [0, 1]
        await store.close()

    run(main())
