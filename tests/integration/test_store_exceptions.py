"""The store's exception contract, as the worker enforces it (issue 15, item 2;
duro/store/_protocol.py): ``Fenced`` drops the run, a ``StoreError`` is retried,
``DataRejectedError`` parks the run, and anything else a store raises is a bug that
parks the run with that error — never retried forever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import duro
from duro._history import EventKind
from duro.errors import StoreError
from tests.conftest import run, wait_until


@duro.step(name="contract.double")
async def double(x: int) -> int:
    return x * 2


@duro.workflow(name="contract.steps")
async def steps(x: int) -> int:
    return await double(await double(x))


@duro.workflow(name="contract.parent")
async def parent(x: int) -> int:
    return await duro.execute_child(steps, x, id="contract-child")


def _inject(engine: duro.Engine, method: str, fail: Callable[..., BaseException | None]
            ) -> list[tuple[Any, ...]]:
    """Make the engine's store raise what ``fail(*args, **kw)`` returns (None: call the
    real method); returns the calls that raised."""
    real = getattr(engine.store, method)
    raised: list[tuple[Any, ...]] = []

    async def patched(*args: Any, **kw: Any) -> Any:
        exc = fail(*args, **kw)
        if exc is not None:
            raised.append(args)
            raise exc
        return await real(*args, **kw)

    setattr(engine.store, method, patched)
    return raised


async def _parked(handle: duro.WorkflowHandle[Any]) -> duro.RunInfo:
    async def is_parked() -> bool:
        return (await handle.describe()).status == duro.RunStatus.PARKED

    await wait_until(is_parked, timeout=20)
    return await handle.describe()


def test_an_unexpected_exception_from_a_write_parks_the_run_with_it(any_db_url: str) -> None:
    """A store whose append raises what no store may (a RuntimeError: a bug) parks the
    run with that error after one attempt, instead of 'it will be retried' forever; once
    fixed, the parked run resumes and completes."""
    def completing(run_id: str, epoch: int, seq: int, events: Any, **kw: Any) -> Any:
        if any(e.kind == EventKind.STEP_COMPLETED for e in events):
            return RuntimeError("the store is broken")
        return None

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            raised = _inject(engine, "append", completing)
            handle = await engine.start(steps, 1, id="broken-write")
            info = await _parked(handle)
            assert info.error is not None and info.error.type == "RuntimeError"
            assert info.error.message == "the store is broken"
            assert "test_store_exceptions.py" in info.error.traceback  # where the bug is
            await asyncio.sleep(0.5)
            assert len(raised) == 1  # bounded: no retry loop
            del engine.store.append  # type: ignore[attr-defined]  # the fix is deployed
            await engine.resume("broken-write")
            assert await handle.result(timeout=20) == 4

    run(main())


def test_an_unexpected_exception_from_a_runs_last_write_parks_it_too(any_db_url: str) -> None:
    """The write that ends a run (here a TypeError from it) parks the run as well: it
    does not stay running, held by nobody."""
    def ending(run_id: str, epoch: int, seq: int, events: Any, **kw: Any) -> Any:
        return TypeError("bad end") if kw.get("status") == "completed" else None

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            raised = _inject(engine, "append", ending)
            handle = await engine.start(steps, 2, id="broken-end")
            info = await _parked(handle)
            assert info.error is not None and info.error.type == "TypeError"
            await asyncio.sleep(0.3)
            assert len(raised) == 1

    run(main())


def test_an_unexpected_exception_from_starting_a_child_parks_the_parent(
        any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            raised = _inject(engine, "start_child",
                             lambda *a, **kw: AssertionError("invariant broken"))
            handle = await engine.start(parent, 1, id="broken-parent")
            info = await _parked(handle)
            assert info.error is not None and info.error.type == "AssertionError"
            await asyncio.sleep(0.3)
            assert len(raised) == 1

    run(main())


def test_a_store_fault_is_retried_not_parked(any_db_url: str) -> None:
    """A StoreError (the database busy, a connection lost) is a fault that may pass: the
    worker reloads the run and carries on."""
    faults = 2

    def flaky(run_id: str, epoch: int, seq: int, events: Any, **kw: Any) -> Any:
        nonlocal faults
        if faults and any(e.kind == EventKind.STEP_COMPLETED for e in events):
            faults -= 1
            return StoreError("database unavailable: connection lost")
        return None

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            raised = _inject(engine, "append", flaky)
            handle = await engine.start(steps, 3, id="flaky-write")
            assert await handle.result(timeout=20) == 12
            assert len(raised) == 2

    run(main())


def test_a_run_being_parked_is_not_released_as_lost(any_db_url: str) -> None:
    """Between leaving the worker's active runs and its parking's commit, a run is still
    the worker's in the store: the worker's reconciliation (runs it owns but does not
    hold) must leave it alone, or it is claimed and run into the same failure again
    (seen once in CI on PostgreSQL: the failing end write raised twice)."""
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            worker = engine.worker
            assert worker is not None
            record, _ = await engine.store.create_run(
                run_id="r-parking", workflow_id="w-parking",
                workflow_name="contract.elsewhere", input=b"[]", now=1.0,
                owner=worker.worker_id, on_conflict="fail", on_reuse="allow")
            assert record.owner == worker.worker_id


            async def reconcile() -> None:
                # It does nothing while claims are in flight: called when there are none
                # (no await between this check and its own).
                await wait_until(lambda: not worker.runs.reserved, interval=0.001)
                await worker._reconcile()

            worker.parking.add("r-parking")
            await reconcile()
            kept = await engine.store.get_run("w-parking")
            assert kept is not None and kept.owner == worker.worker_id
            worker.parking.discard("r-parking")
            await reconcile()  # now it is lost: handed back
            released = await engine.store.get_run("w-parking")
            assert released is not None and released.owner is None

    run(main())
