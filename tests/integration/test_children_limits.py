"""Children that nest without end, chains too deep to close recursively, and default
child ids that grow with their parents' (issue 13, item 7), on both stores."""

from __future__ import annotations

import secrets
import time

import pytest

import duro
from duro.errors import DataRejectedError
from duro.store import RunLinks, RunStatus, Store, open_store
from duro.testing import replay
from duro.workflow._ids import MAX_DERIVED_ID_BYTES, default_child_id
from tests.conftest import run


@duro.workflow(name="lim.recurse")
async def recurse(level: int) -> int:
    """Starts itself as a child, forever: only the depth limit stops it."""
    return await recurse(level + 1)


@duro.workflow(name="lim.dive")
async def dive(levels: int) -> int:
    """A chain of ``levels`` nested children with default ids; returns the depth reached."""
    if levels == 0:
        return 0
    return 1 + await dive(levels - 1)


@duro.workflow(name="lim.again")
async def again(times: int) -> int:
    if times:
        duro.continue_as_new(times - 1)
    return times


@duro.workflow(name="lim.holder")
async def holder() -> int:
    return await again(2)  # a child (depth 1) that continues as new twice


@duro.workflow(name="lim.named")
async def named(child_id: str) -> str:
    try:
        await duro.execute_child(dive, 0, id=child_id)
    except duro.ChildWorkflowError as exc:
        return f"{exc.status}: {exc}"
    return "started"


def test_runaway_recursion_stops_at_the_depth_limit(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, max_child_depth=5) as engine:
            root = await engine.start(recurse, 0, id="runaway")
            with pytest.raises(duro.WorkflowFailedError) as failed:
                await root.result(timeout=30)
            assert "nested 6 deep, past the limit of 5" in str(failed.value)
            assert "max_child_depth" in str(failed.value)
            runs = await engine.list(name="lim.recurse", limit=1000)
            assert len(runs) == 6, "a run per level, 0 to 5, and no more"
            depths = sorted([(await engine.store.get_run(r.workflow_id)).depth  # type: ignore[union-attr]
                             for r in runs])
            assert depths == [0, 1, 2, 3, 4, 5]
            deepest = next(r for r in runs if r.run_id not in {c.parent_run_id for c in runs})
            history = await engine.get_handle(deepest.workflow_id).history()
            refused = [e for e in history if e.kind == "child_failed"]
            assert len(refused) == 1 and refused[0].meta == {"status": "not_started"}
            assert refused[0].data["type"] == "MaxChildDepthExceeded"
            # Recorded at its op: a replay raises the same error at the same place.
            replayed = replay(recurse, history, run_id=deepest.run_id,
                              workflow_id=deepest.workflow_id)
            assert replayed.status == "failed" and replayed.error is not None
            assert "past the limit of 5" in replayed.error.message

    run(main(), timeout=60)


def test_the_default_depth_limit_bounds_a_runaway(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            root = await engine.start(recurse, 0, id="runaway-default")
            with pytest.raises(duro.WorkflowFailedError, match="past the limit of 100"):
                await root.result(timeout=60)
            assert len(await engine.list(name="lim.recurse", limit=1000)) == 101

    run(main(), timeout=90)


def test_continue_as_new_keeps_the_depth(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            await (await engine.start(holder, id="holder")).result(timeout=30)
            runs = await engine.list(name="lim.again")
            assert len(runs) == 3  # the child and two successors
            for r in runs:
                record = await engine.store.get_run(r.workflow_id, r.run_id)
                assert record is not None and record.depth == 1, record

    run(main(), timeout=60)


async def _chain(store: Store, length: int) -> list[str]:
    """A root and ``length`` nested children, each live, created directly in the store."""
    now = time.time()
    ids = ["chain-0"]
    await store.create_run(run_id="chain-0", workflow_id="chain-0", workflow_name="lim.dive",
                           input=b"{}", now=now, owner=None, on_conflict="fail",
                           on_reuse="fail")
    for i in range(1, length + 1):
        ids.append(f"chain-{i}")
        await store.create_run(
            run_id=ids[-1], workflow_id=ids[-1], workflow_name="lim.dive", input=b"{}",
            now=now, owner=None, on_conflict="fail", on_reuse="fail",
            links=RunLinks(parent_run_id=ids[-2], parent_op=1, parent_close="terminate",
                           depth=i))
    return ids


def test_terminating_a_chain_of_a_thousand_nested_children(any_db_url: str) -> None:
    """The parent-close policy reaches the bottom of the chain, in one transaction
    (recursively, ~450 levels overflowed Python's stack and the chain stayed live)."""

    async def main() -> None:
        store = open_store(any_db_url)
        await store.open()
        try:
            ids = await _chain(store, 1000)
            await store.terminate("chain-0", reason="stop it all", now=time.time())
            statuses = [(await store.get_run(i)).status for i in ids]  # type: ignore[union-attr]
            assert statuses == [RunStatus.TERMINATED] * len(ids)
            bottom = await store.load_history(ids[-1])
            assert bottom[-1].kind == "run_terminated"
        finally:
            await store.close()

    run(main(), timeout=120)


def test_default_child_ids_stay_bounded() -> None:
    run_id = "0123456789abcdef"
    assert default_child_id("order-7", run_id, 3) == "order-7/01234567/3"
    parent = "root"
    for level in range(1000):
        parent = default_child_id(parent, f"{level:08x}-run", 1)
        assert len(parent.encode()) <= MAX_DERIVED_ID_BYTES
    long = "x" * 500
    first = default_child_id(long, run_id, 1)
    assert first == default_child_id(long, run_id, 1), "deterministic"
    assert first != default_child_id(long + "y", run_id, 1)
    assert first != default_child_id(long, run_id, 2)
    assert first.startswith("x" * 48 + "~") and len(first) < 120


@pytest.mark.postgres
def test_a_deep_chain_of_default_id_children_on_postgres(pg_url: str) -> None:
    """300 levels: plain default ids would reach ~3.6 KB, past what PostgreSQL indexes."""

    async def main() -> None:
        async with duro.Engine(pg_url, max_child_depth=400) as engine:
            root = await engine.start(dive, 300, id="deep-" + "d" * 60)
            assert await root.result(timeout=120) == 300
            longest = max(len(r.workflow_id) for r in await engine.list(limit=1000))
            assert longest <= MAX_DERIVED_ID_BYTES

    run(main(), timeout=180)


@pytest.mark.postgres
def test_a_too_long_workflow_id_is_a_clear_error_on_postgres(pg_url: str) -> None:
    """Refused by the database's index, reported as such (not "database unavailable")
    and not retried; as a child's id, the parent gets a ChildWorkflowError at once."""
    # Under the API's limit of 1,000 characters, but ~4,000 bytes of UTF-8 (CJK of the
    # second plane, at random: PostgreSQL compresses repetitive keys).
    too_long = "".join(chr(0x20000 + secrets.randbelow(0xA6DF)) for _ in range(999))

    async def main() -> None:
        async with duro.Engine(pg_url) as engine:
            with pytest.raises(DataRejectedError, match="too large to index"):
                await engine.start(dive, 0, id=too_long)
            parent = await engine.start(named, too_long, id="names-a-long-child")
            answer = await parent.result(timeout=30)
            assert answer.startswith("not_started: ") and "too large to index" in answer
            assert len(await engine.list(name="lim.dive")) == 0

    run(main(), timeout=60)
