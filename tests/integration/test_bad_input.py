"""Bad input gets a clear, typed error and loses nothing already stored."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import duro
from tests.conftest import read_only, run, wait_until


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Store-agnostic tests: each runs on SQLite and on PostgreSQL."""
    return any_db_url


@duro.step
def plain(x: int) -> int:
    return x + 1


@duro.step
def returns_object() -> object:
    return object()


@duro.workflow
async def wf_ok(x: int) -> int:
    return await plain(x)


@duro.workflow
async def wf_bad_step_result() -> str:
    try:
        await returns_object()
    except duro.StepFailedError as exc:
        return f"{exc.error_type}: {exc.attempts}"
    return "unreachable"


@duro.workflow
async def wf_bad_result() -> object:
    return {1, 2, object()}


@duro.workflow
async def wf_wrong_step_args() -> int:
    return await plain(1, 2)  # type: ignore[call-arg]


def test_unserializable_arguments_fail_at_the_call_site_and_store_nothing(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            with pytest.raises(duro.SerializationError, match="arguments of workflow"):
                await engine.start(wf_ok, object())  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="wrong arguments"):
                await engine.start(wf_ok, 1, 2)  # type: ignore[call-arg]
            assert await engine.list() == []

    run(main())


def test_unserializable_results_fail_clearly(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            step_case = await engine.start(wf_bad_step_result)
            assert await step_case.result(timeout=10) == "duro.errors.SerializationError: 1"
            wf_case = await engine.start(wf_bad_result)
            with pytest.raises(duro.WorkflowFailedError) as info:
                await wf_case.result(timeout=10)
            assert info.value.cause.type == "duro.errors.SerializationError"
            assert "JSON" in info.value.cause.message

    run(main())


def test_unknown_workflow_name_and_wrong_step_arguments(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            with pytest.raises(duro.WorkflowNotFoundError, match="no_such_workflow"):
                await engine.start("no_such_workflow")
            handle = await engine.start(wf_wrong_step_args)
            with pytest.raises(duro.WorkflowFailedError) as info:
                await handle.result(timeout=10)
            assert info.value.cause.type == "TypeError"
            assert "plain" in info.value.cause.message and "wrong arguments" in \
                info.value.cause.message
            with pytest.raises(duro.RunNotFoundError):
                await engine.get_handle("nope").status()

    run(main())


def test_a_run_whose_code_is_gone_waits_and_resumes_when_it_returns(db_url: str) -> None:
    async def main() -> None:
        # This worker only knows wf_bad_result: the wf_ok run has no code here.
        async with duro.Engine(db_url, workflows=[wf_bad_result]) as engine:
            orphan = await engine.start(wf_ok, 41, id="orphan")
            other = await engine.start(wf_bad_result)
            with pytest.raises(duro.WorkflowFailedError):
                await other.result(timeout=10)
            await asyncio.sleep(0.5)
            assert await orphan.status() == duro.RunStatus.PENDING
        async with duro.Engine(db_url, workflows=[wf_ok]) as engine:
            assert await engine.get_handle("orphan").result(timeout=10) == 42

    run(main())


def test_read_only_database_gives_a_typed_error_and_loses_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    url = f"sqlite:///{folder}/ro.db"

    async def create() -> None:
        async with duro.Engine(url) as engine:
            assert await (await engine.start(wf_ok, 1, id="kept")).result(timeout=10) == 2

    run(create())
    with read_only(folder / "ro.db"):
        with pytest.raises(duro.DatabaseReadOnlyError, match="read-only"):
            run(create())
        for leftover in folder.glob("ro.db-*"):  # from the attempt above
            leftover.unlink()
        with read_only(folder), pytest.raises(duro.StoreError, match="writable") as info:
            run(create())
        assert "ro.db-wal" in str(info.value)

    async def check() -> int:
        async with duro.Engine(url, worker=False) as engine:
            return await engine.get_handle("kept").result(timeout=5)  # type: ignore[no-any-return]

    assert run(check()) == 2


def test_locked_database_gives_a_typed_error_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}?busy_timeout=300"

    async def main() -> None:
        async with duro.Engine(url) as engine:
            await (await engine.start(wf_ok, 1, id="before")).result(timeout=10)
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                started = time.monotonic()
                with pytest.raises(duro.DatabaseLockedError, match="locked"):
                    await engine.start(wf_ok, 2, id="during")
                assert time.monotonic() - started < 5
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert await (await engine.start(wf_ok, 3, id="after")).result(timeout=10) == 4
            assert await engine.get_handle("before").result(timeout=5) == 2
            with pytest.raises(duro.RunNotFoundError):
                await engine.get_handle("during").status()

    run(main())
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(duro.DatabaseLockedError):
            run(duro.Engine(url).open())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


@duro.workflow
async def wf_two_steps(x: int) -> int:
    first = await plain(x)
    await asyncio.sleep(3600)
    return await plain(first)


def test_corrupt_payload_rows_give_typed_errors_and_park(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    url = f"sqlite:///{path}"
    clock = duro.ManualClock()

    async def main() -> None:
        async with duro.Engine(url, clock=clock) as engine:
            done = await engine.start(wf_ok, 1, id="done")
            assert await done.result(timeout=10) == 2
            waiting = await engine.start(wf_two_steps, 1, id="waiting")
            await wait_until(lambda: _is(waiting, duro.RunStatus.SUSPENDED))
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE runs SET result = x'ff00' WHERE workflow_id = 'done'")
            conn.execute("UPDATE events SET data = x'7b7b7b' WHERE kind = 'step_completed' "
                         "AND run_id = (SELECT run_id FROM runs WHERE workflow_id='waiting')")
        async with duro.Engine(url, clock=clock) as engine:
            with pytest.raises(duro.PayloadDecodeError, match="corrupt"):
                await engine.get_handle("done").result(timeout=5)
            clock.advance(3601)
            handle = engine.get_handle("waiting")
            await wait_until(lambda: _is(handle, duro.RunStatus.PARKED))
            info = await handle.describe()
            assert info.error is not None and info.error.type == "PayloadDecodeError"
            assert "seq 1" in info.error.message
            history = await handle.history()
            assert [e.kind for e in history] == ["run_started", "step_completed"]
            assert history[1].corrupt is not None
        # Repair the row, resume the run: it completes from where it was.
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE events SET data = '2' WHERE kind = 'step_completed' "
                         "AND run_id = (SELECT run_id FROM runs WHERE workflow_id='waiting')")
        async with duro.Engine(url, clock=clock) as engine:
            await engine.resume("waiting")
            assert await engine.get_handle("waiting").result(timeout=10) == 3

    run(main())


async def _is(handle: duro.WorkflowHandle[object], status: duro.RunStatus) -> bool:
    return await handle.status() == status


@duro.workflow
async def wf_time_sleep() -> None:
    time.sleep(0.01)


@duro.workflow
async def wf_opens_file() -> str:
    with open("/etc/hostname") as f:
        return f.read()


@duro.workflow
async def wf_thread() -> int:
    return await asyncio.to_thread(lambda: 1)


@duro.workflow
async def wf_starts_thread() -> int:
    box: list[int] = []
    worker = threading.Thread(target=box.append, args=[1])
    worker.start()
    worker.join()
    return box[0]


@duro.workflow
async def wf_thread_pool() -> int:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: 1).result()


@duro.step
def step_with_threads(n: int) -> int:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return sum(pool.map(lambda i: i, range(n)))


@duro.workflow
async def wf_step_threads(n: int) -> int:
    return await step_with_threads(n)


@duro.workflow
async def wf_busy() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pass


@pytest.mark.parametrize("wf, what", [
    (wf_time_sleep, "time.sleep"),
    (wf_opens_file, "opened a file"),
    (wf_thread, "run_in_executor"),
    (wf_starts_thread, "started a thread"),
    (wf_thread_pool, "started a thread"),
    (wf_busy, "without awaiting"),
])
def test_blocking_workflow_code_parks_the_run_with_a_clear_error(
    db_url: str, wf: duro.Workflow[[], object], what: str
) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, workflow_task_timeout=0.5) as engine:
            started = time.monotonic()
            handle = await engine.start(wf)
            await wait_until(lambda: _is(handle, duro.RunStatus.PARKED), timeout=10)
            assert time.monotonic() - started < 10
            info = await handle.describe()
            assert info.error is not None and info.error.type == "WorkflowBlockingError"
            assert what in info.error.message and "@duro.step" in info.error.message
            # the worker is still healthy
            assert await (await engine.start(wf_ok, 1)).result(timeout=10) == 2
            # steps may use threads: only workflow code is guarded
            assert await (await engine.start(wf_step_threads, 5)).result(timeout=10) == 10

    run(main())
