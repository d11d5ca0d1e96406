"""Human approvals (issue 17, item 5) on both stores: ``duro.approval()`` in workflow
code, the read model of pending approvals, decisions through ``client.approvals`` (from
a client without a worker too), the audit trail in the history, timeouts, refusals,
replay, and a worker restart while a run waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import duro
from duro._history import ApprovalMeta, DecisionMeta, EventKind
from duro.errors import ApprovalNotFoundError, ApprovalNotPendingError, InvalidArgumentError
from duro.testing import replay
from tests.conftest import run, wait_until


@duro.workflow(name="approvals.deploy")
async def deploy(service: str, timeout: float | None = None) -> dict[str, Any]:
    decision = await duro.approval("deploy", {"service": service, "version": 3},
                                   timeout=timeout)
    return {"approved": decision.approved, "by": decision.by, "comment": decision.comment,
            "timed_out": decision.timed_out, "id": decision.approval_id}


@duro.workflow(name="approvals.two")
async def two() -> list[bool]:
    first = await duro.approval("first")
    second = await duro.approval("second", ["x"])
    return [first.approved, second.approved]


async def _pending(client: duro.Client, workflow_id: str, count: int = 1
                   ) -> list[duro.ApprovalInfo]:
    """The run's pending approvals, once there are ``count`` (bounded wait)."""
    found: list[duro.ApprovalInfo] = []

    async def listed() -> bool:
        nonlocal found
        found = (await client.approvals.list(workflow_id=workflow_id)).approvals
        return len(found) >= count

    await wait_until(listed, timeout=15)
    return found


def test_approve_round_trip_and_audit_trail(any_db_url: str) -> None:
    """Approved: the workflow gets who, the verdict and the comment; the read model says
    approved; the history records the request (with its context) and the decision."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(deploy, "api", id="ap-1")
            [pending] = await _pending(engine, "ap-1")
            assert pending.status == "pending" and pending.name == "deploy"
            assert pending.context == {"service": "api", "version": 3}
            assert pending.workflow_name == "approvals.deploy"
            assert pending.run_id == handle.run_id and pending.deadline is None
            decided = await engine.approvals.approve(pending.approval_id, by="ada",
                                                     comment="ship it")
            assert decided.status == "approved" and decided.decided_by == "ada"
            result = await handle.result(timeout=15)
            assert result == {"approved": True, "by": "ada", "comment": "ship it",
                              "timed_out": False, "id": pending.approval_id}
            got = await engine.approvals.get(pending.approval_id)
            assert got.status == "approved" and got.comment == "ship it"
            assert got.decided_at is not None
            assert (await engine.approvals.list()).approvals == []
            events = await engine.store.load_history(handle.run_id)
            requested = [e for e in events if e.kind == EventKind.APPROVAL_REQUESTED]
            decided_ev = [e for e in events if e.kind == EventKind.APPROVAL_DECIDED]
            assert len(requested) == 1 and len(decided_ev) == 1
            assert ApprovalMeta.decode(requested[0].meta).approval_id == pending.approval_id
            audit = DecisionMeta.decode(decided_ev[0].meta)
            assert (audit.by, audit.approved, audit.comment) == ("ada", True, "ship it")
            assert audit.at == pytest.approx(got.decided_at.timestamp())
            assert decided_ev[0].op == requested[0].op

    run(main())


def test_reject_from_a_client_without_worker(any_db_url: str) -> None:
    """Rejected through a plain Client (no worker in it): the decision reaches the
    Engine's worker through the store."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine, duro.Client(any_db_url) as other:
            handle = await engine.start(deploy, "db", id="ap-2")
            [pending] = await _pending(other, "ap-2")
            await other.approvals.reject(pending.approval_id, by="bob", comment="not today")
            result = await handle.result(timeout=15)
            assert result["approved"] is False and result["by"] == "bob"
            assert result["comment"] == "not today" and result["timed_out"] is False
            assert (await other.approvals.get(pending.approval_id)).status == "rejected"

    run(main())


def test_timeout_returns_a_timed_out_decision(any_db_url: str) -> None:
    """No decision within the timeout: the workflow gets ``timed_out=True``, the read
    model says timed_out, and a decision after it is refused."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(deploy, "cache", 0.3, id="ap-3")
            result = await handle.result(timeout=15)
            assert result["timed_out"] is True and result["approved"] is False
            assert result["by"] is None
            info = await engine.approvals.get(result["id"])
            assert info.status == "timed_out" and info.deadline is not None
            with pytest.raises(ApprovalNotPendingError) as caught:
                await engine.approvals.approve(result["id"], by="late")
            assert caught.value.status == "timed_out"
            kinds = [e.kind for e in await engine.store.load_history(handle.run_id)]
            assert EventKind.APPROVAL_TIMED_OUT in kinds
            assert EventKind.APPROVAL_DECIDED not in kinds

    run(main())


def test_refusals_store_nothing(any_db_url: str) -> None:
    """Unknown id, a second decision (the first stands), bad arguments: typed errors."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            with pytest.raises(ApprovalNotFoundError):
                await engine.approvals.approve("nope.1", by="x")
            with pytest.raises(ApprovalNotFoundError):
                await engine.approvals.get("nope.1")
            handle = await engine.start(deploy, "web", id="ap-4")
            [pending] = await _pending(engine, "ap-4")
            for bad in ({"by": ""}, {"by": "x\x00"}, {"comment": "c" * 5000}):
                with pytest.raises(InvalidArgumentError):
                    await engine.approvals.approve(pending.approval_id, **bad)
            with pytest.raises(InvalidArgumentError):
                await engine.approvals.list(status="maybe")
            with pytest.raises(InvalidArgumentError):
                await engine.approvals.list(cursor="garbage!")
            await engine.approvals.approve(pending.approval_id, by="first")
            with pytest.raises(ApprovalNotPendingError) as caught:
                await engine.approvals.reject(pending.approval_id, by="second")
            assert caught.value.status == "approved"
            result = await handle.result(timeout=15)
            assert result["by"] == "first" and result["approved"] is True
            events = await engine.store.load_history(handle.run_id)
            assert [e.kind for e in events].count(EventKind.APPROVAL_DECIDED) == 1

    run(main())


def test_listing_filters_pages_and_run_end(any_db_url: str) -> None:
    """Pending only by default, filters by workflow and name, pages with a cursor; a run
    that ends leaves none pending and a decision on it is refused."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            for i in range(3):
                await engine.start(deploy, f"s{i}", id=f"ap-list-{i}")
            await engine.start(two, id="ap-two")
            await wait_until(lambda: _count(engine, None, 4), timeout=15)
            assert await _count(engine, "approvals.deploy", 3)
            assert await _count(engine, "approvals.two", 1)
            names = {a.name for a in (await engine.approvals.list(name="first")).approvals}
            assert names == {"first"}
            page = await engine.approvals.list(limit=2)
            assert len(page.approvals) == 2 and page.next_cursor is not None
            rest = await engine.approvals.list(limit=2, cursor=page.next_cursor)
            ids = [a.approval_id for a in page.approvals + rest.approvals]
            assert len(ids) == len(set(ids)) == 4 and rest.next_cursor is None
            [victim] = (await engine.approvals.list(workflow_id="ap-list-0")).approvals
            await engine.terminate("ap-list-0")
            assert await _count(engine, None, 3)
            ended = await engine.approvals.get(victim.approval_id)
            assert ended.status == "run_ended"
            with pytest.raises(ApprovalNotPendingError) as caught:
                await engine.approvals.approve(victim.approval_id, by="x")
            assert caught.value.status == "run_ended"
            every = await engine.approvals.list(status=None, limit=100)
            assert len(every.approvals) == 4
            # The second approval of "two" appears once the first is decided.
            [first] = (await engine.approvals.list(workflow_id="ap-two")).approvals
            await engine.approvals.approve(first.approval_id, by="a")
            [second] = await _pending_named(engine, "ap-two", "second")
            assert second.context == ["x"]
            await engine.approvals.reject(second.approval_id, by="b")
            assert await engine.get_handle("ap-two").result(timeout=15) == [True, False]

    run(main())


async def _count(client: duro.Client, workflow: str | None, expected: int) -> bool:
    return len((await client.approvals.list(workflow=workflow)).approvals) == expected


async def _pending_named(client: duro.Client, workflow_id: str, name: str
                         ) -> list[duro.ApprovalInfo]:
    found: list[duro.ApprovalInfo] = []

    async def listed() -> bool:
        nonlocal found
        found = (await client.approvals.list(workflow_id=workflow_id, name=name)).approvals
        return bool(found)

    await wait_until(listed, timeout=15)
    return found


def test_replay_of_a_history_with_approvals_is_deterministic(any_db_url: str) -> None:
    """The recorded history replays to the same result, twice; code that asks for another
    approval there is refused as nondeterministic."""

    async def main() -> list[duro.Event]:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(deploy, "replayed", id="ap-replay")
            [pending] = await _pending(engine, "ap-replay")
            await engine.approvals.approve(pending.approval_id, by="eve", comment="ok")
            await handle.result(timeout=15)
            return await handle.history()

    events = run(main())
    first = replay(deploy, events)
    second = replay(deploy, events)
    assert first.status == second.status == "completed"
    assert first.result["by"] == "eve" and first.result == second.result

    @duro.workflow(name="approvals.deploy.other")
    async def other(service: str, timeout: float | None = None) -> bool:
        return (await duro.approval("rollback")).approved

    with pytest.raises(duro.NondeterminismError):
        replay(other, events, workflow_name="approvals.deploy")


def test_worker_restart_while_waiting(any_db_url: str) -> None:
    """The run waits; its worker stops; the approval stays pending and is decided while
    no worker runs; a new worker delivers the decision."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            await engine.start(deploy, "restart", id="ap-restart")
            [pending] = await _pending(engine, "ap-restart")
        async with duro.Client(any_db_url) as client:
            [still] = (await client.approvals.list(workflow_id="ap-restart")).approvals
            assert still.approval_id == pending.approval_id
            await client.approvals.approve(pending.approval_id, by="night shift")
        async with duro.Engine(any_db_url) as engine:
            result = await engine.get_handle("ap-restart").result(timeout=20)
            assert result["by"] == "night shift" and result["approved"] is True

    run(main())


def test_bad_approval_calls_fail_the_run_not_the_worker(any_db_url: str) -> None:
    """An empty name, a bad timeout, a context that is not JSON: the call raises."""

    @duro.workflow(name="approvals.bad")
    async def bad() -> list[str]:
        out = []
        for kwargs in ({"name": ""}, {"name": "x", "timeout": -1},
                       {"name": "x", "context": object()}):
            try:
                await duro.approval(**kwargs)
            except (InvalidArgumentError, duro.SerializationError) as exc:
                out.append(type(exc).__name__)
        return out

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(bad, id="ap-bad")
            assert await handle.result(timeout=15) == [
                "InvalidArgumentError", "InvalidArgumentError", "SerializationError"]
            assert (await engine.approvals.list(status=None)).approvals == []

    run(main())


def test_a_reset_run_waits_for_its_own_approval(any_db_url: str) -> None:
    """Reset to just after the request: the old run's approval ends with it, the new run's
    is pending under the new run's id, and deciding it completes the new run."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            await engine.start(deploy, "reset", id="ap-reset")
            [old] = await _pending(engine, "ap-reset")
            record = await engine.store.get_run("ap-reset")
            assert record is not None
            handle = await engine.reset("ap-reset", to=record.history_len)
            assert handle.run_id != old.run_id
            assert (await engine.approvals.get(old.approval_id)).status == "run_ended"
            [new] = await _pending(engine, "ap-reset")
            assert new.run_id == handle.run_id and new.context == old.context
            await engine.approvals.approve(new.approval_id, by="after reset")
            assert (await handle.result(timeout=15))["by"] == "after reset"

    run(main())


def test_another_namespace_neither_sees_nor_decides(any_db_url: str) -> None:
    """An approval of namespace A is not listed, read or decided from namespace B; a
    client of every namespace sees it."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            a, b = engine.with_namespace("team-a"), engine.with_namespace("team-b")
            handle = await a.start(deploy, "ns", id="ap-ns")
            [pending] = await _pending(a, "ap-ns")
            assert pending.namespace == "team-a"
            assert (await b.approvals.list(status=None)).approvals == []
            with pytest.raises(ApprovalNotFoundError):
                await b.approvals.get(pending.approval_id)
            with pytest.raises(ApprovalNotFoundError):
                await b.approvals.approve(pending.approval_id, by="intruder")
            every = engine.with_namespace(None)
            assert [x.approval_id for x in (await every.approvals.list()).approvals] == [
                pending.approval_id]
            await a.approvals.approve(pending.approval_id, by="member")
            assert (await handle.result(timeout=15))["by"] == "member"

    run(main())


def test_concurrent_decisions_one_wins(any_db_url: str) -> None:
    """Eight deciders at once, each through its own client (its own connections): one
    decision is taken, the others are refused, the history records one."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(deploy, "race", id="ap-race")
            [pending] = await _pending(engine, "ap-race")
            clients = [duro.Client(any_db_url) for _ in range(8)]
            for c in clients:
                await c.open()
            try:
                outcomes = await asyncio.gather(
                    *(c.approvals.decide(pending.approval_id, approved=i % 2 == 0,
                                         by=f"decider-{i}") for i, c in enumerate(clients)),
                    return_exceptions=True)
            finally:
                for c in clients:
                    await c.close()
            won = [o for o in outcomes if isinstance(o, duro.ApprovalInfo)]
            assert len(won) == 1, outcomes
            assert all(isinstance(o, ApprovalNotPendingError) for o in outcomes
                       if o is not won[0])
            result = await handle.result(timeout=15)
            assert result["by"] == won[0].decided_by
            events = await engine.store.load_history(handle.run_id)
            assert [e.kind for e in events].count(EventKind.APPROVAL_DECIDED) == 1

    run(main())
