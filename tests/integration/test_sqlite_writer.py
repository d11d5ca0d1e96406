"""The SQLite writer's pipeline: a batch's statements on the event loop, its commit on
the commit thread; whole batches on the writer thread for what must not run on the loop.

On a real file, with the writer on its own (store/sqlite/_writer.py): where each
operation ran, what committed, and that the loop never waits for another process's lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from duro.errors import StoreError
from duro.store.sqlite._writer import Writer
from tests.conftest import run


def _connect(path: Path) -> Any:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=10.0)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)")
        # Numbered as written: the order in which writes ran (and so committed).
        conn.execute("CREATE TABLE IF NOT EXISTS log (n INTEGER PRIMARY KEY, v TEXT)")
        return conn

    return connect


def _translate(exc: BaseException) -> BaseException:
    return StoreError(str(exc)) if isinstance(exc, sqlite3.Error) else exc


def _writer(path: Path, **kw: Any) -> Writer:
    writer = Writer(_connect(path), _translate, **kw)
    writer.start()
    return writer


def _rows(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT k, v FROM t ORDER BY k"))


def _log(value: str) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO log (v) VALUES (?)", (value,))

    return op


def _logged(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT v FROM log ORDER BY n")]


def _insert(k: int, where: dict[int, str], value: str = "x") -> Any:
    def op(conn: sqlite3.Connection) -> int:
        where[k] = threading.current_thread().name
        conn.execute("INSERT INTO t VALUES (?, ?)", (k, value))
        return k

    return op


async def _gather(writer: Writer, keys: range, where: dict[int, str]) -> list[int]:
    """Insert ``keys``, handed in together (one batch, as far as the writer goes)."""
    return list(await asyncio.gather(*(writer.submit(_insert(k, where)) for k in keys)))


def test_a_batch_runs_on_the_loop_and_commits_on_the_commit_thread(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _writer(path)
    where: dict[int, str] = {}

    async def main() -> list[int]:
        return await _gather(writer, range(50), where)

    try:
        assert run(main()) == list(range(50))
        loop_thread = threading.current_thread().name
        assert set(where.values()) == {loop_thread}
        assert writer.ops == 50 and writer.batches < 50  # they shared commits
        assert writer._submitted == writer._finished == 50
    finally:
        writer.stop()
    assert [k for k, _ in _rows(path)] == list(range(50))


def test_a_failing_operation_undoes_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _writer(path)
    where: dict[int, str] = {}

    async def main() -> list[Any]:
        ops = [writer.submit(_insert(k, where)) for k in range(5)]
        ops.append(writer.submit(_insert(2, where)))  # the key is taken: it fails
        ops += [writer.submit(_insert(k, where)) for k in range(5, 8)]
        return list(await asyncio.gather(*ops, return_exceptions=True))

    try:
        got = run(main())
    finally:
        writer.stop()
    assert isinstance(got[5], StoreError)
    assert [g for g in got if not isinstance(g, BaseException)] == list(range(8))
    assert [k for k, _ in _rows(path)] == list(range(8))


def test_a_lone_failing_operation_rolls_back_and_the_next_commits(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _writer(path)
    where: dict[int, str] = {}

    async def main() -> None:
        assert await writer.submit(_insert(1, where)) == 1

        def half(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (2, 'half')")
            raise ValueError("refused")

        with pytest.raises(ValueError):
            await writer.submit(half)
        assert await writer.submit(_insert(3, where)) == 3

    try:
        run(main())
        assert writer._submitted == writer._finished
    finally:
        writer.stop()
    assert _rows(path) == [(1, "x"), (3, "x")]


def test_long_operations_and_other_loops_run_on_the_writer_thread(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _writer(path)
    where: dict[int, str] = {}

    def other_loop(keys: range) -> None:
        asyncio.run(_gather(writer, keys, where))

    async def main() -> None:
        await writer.submit(_insert(0, where))  # this loop owns the pipeline
        await writer.submit(_insert(1, where), on_thread=True)
        await asyncio.to_thread(other_loop, range(10, 20))
        await _gather(writer, range(20, 30), where)
        # Both at once: all commit (this loop's batches go to the thread while it has
        # the other loop's writes to run: one order for everything handed to it).
        await asyncio.gather(asyncio.to_thread(other_loop, range(30, 40)),
                             _gather(writer, range(40, 50), where))

    try:
        run(main())
    finally:
        writer.stop()
    me = threading.current_thread().name
    assert where[0] == me and {where[k] for k in range(20, 30)} == {me}
    assert where[1] == "duro-sqlite-writer"
    assert {where[k] for k in range(10, 20)} == {"duro-sqlite-writer"}
    assert {where[k] for k in range(30, 40)} == {"duro-sqlite-writer"}
    assert [k for k, _ in _rows(path)] == [0, 1, *range(10, 50)]
    assert writer._submitted == writer._finished == 42


def test_one_caller_s_writes_commit_in_its_order_whichever_way_they_go(
        tmp_path: Path) -> None:
    """A finds the file locked and goes to the writer thread; B, handed in after (not
    waiting for A), must not commit before it."""
    for trial in range(20):
        path = tmp_path / f"o{trial}.db"
        writer = _writer(path)
        where: dict[int, str] = {}
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            run(_a_then_b(writer, other, where))
        finally:
            writer.stop()
            other.close()
        assert where[1] == "duro-sqlite-writer"
        assert _logged(path) == ["A", "B"], f"trial {trial}"


async def _a_then_b(writer: Writer, other: sqlite3.Connection,
                    where: dict[int, str]) -> None:
    other.execute("BEGIN IMMEDIATE")
    a = writer.submit(_both(_insert(1, where), _log("A")))
    await asyncio.sleep(0)  # its batch: BEGIN finds the lock, to the thread
    other.execute("COMMIT")
    b = writer.submit(_log("B"))
    await asyncio.gather(a, b)


def _both(*ops: Any) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        for each in ops:
            each(conn)

    return op


def test_closing_while_tasks_write_answers_every_write(tmp_path: Path) -> None:
    """The store closes (the writer stopped from another thread, as SqliteStore.close
    does) while eight tasks keep writing: close returns, every write is committed or
    refused as closed, none is left waiting, and what was answered is what is stored."""
    for trial in range(5):
        path = tmp_path / f"c{trial}.db"
        writer = _writer(path)
        answered: list[int] = []
        refused = run(_close_while_writing(writer, answered))
        assert refused == 8
        stored = {k for k, _ in _rows(path)}
        assert answered and set(answered) <= stored


async def _close_while_writing(writer: Writer, answered: list[int]) -> int:
    counter = iter(range(1_000_000))
    refused = 0

    async def keep_writing() -> None:
        nonlocal refused
        where: dict[int, str] = {}
        while True:
            k = next(counter)
            try:
                await writer.submit(_insert(k, where))
            except StoreError as exc:
                assert "closed" in str(exc)
                refused += 1
                return
            answered.append(k)

    tasks = [asyncio.create_task(keep_writing()) for _ in range(8)]
    await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.to_thread(writer.stop), 10)
    _, hung = await asyncio.wait(tasks, timeout=5)
    assert not hung, f"{len(hung)} writers never answered"
    return refused


def test_the_loop_never_waits_for_another_process_s_lock(tmp_path: Path) -> None:
    """Another connection holds the write lock for 0.5 s: the batch goes to the writer
    thread, which waits for it (the busy timeout), while the loop runs on."""
    path = tmp_path / "w.db"
    writer = _writer(path)
    where: dict[int, str] = {}
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (100, 'other')")
    gaps: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, other.execute, "COMMIT")
        write = writer.submit(_insert(1, where))
        last = time.perf_counter()
        while not write.done():  # a ticker: how long the loop ever stalls
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        assert await write == 1
        assert await writer.submit(_insert(2, where)) == 2  # the pipeline again

    try:
        run(main())
    finally:
        writer.stop()
        other.close()
    assert where[1] == "duro-sqlite-writer"
    assert where[2] == threading.current_thread().name
    assert sum(gaps) >= 0.4 and max(gaps) < 0.25, max(gaps)
    assert [k for k, _ in _rows(path)] == [1, 2, 100]


def test_a_failed_commit_check_fails_the_batch_and_every_write_after(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    commits = 0

    def guard() -> None:
        nonlocal commits
        commits += 1
        if commits == 2:
            raise StoreError("the file was replaced")

    writer = _writer(path, guard=guard)
    where: dict[int, str] = {}

    async def main() -> None:
        assert await writer.submit(_insert(1, where)) == 1
        got = await asyncio.gather(*(writer.submit(_insert(k, where)) for k in (2, 3)),
                                   return_exceptions=True)
        assert all(isinstance(g, StoreError) for g in got), got
        with pytest.raises(StoreError, match="replaced"):
            writer.submit(_insert(4, where))

    try:
        run(main())
    finally:
        writer.stop()


def test_stop_commits_what_the_pipeline_has_not_run_yet(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _writer(path)
    where: dict[int, str] = {}

    async def main() -> list[int]:
        futs = [writer.submit(_insert(k, where)) for k in range(5)]
        writer.stop()  # before the loop ran the batch: the thread runs it
        return list(await asyncio.gather(*futs))

    assert run(main()) == list(range(5))
    assert {where[k] for k in range(5)} == {"duro-sqlite-writer"}
    assert [k for k, _ in _rows(path)] == list(range(5))
    with pytest.raises(StoreError, match="closed"):
        run(_submit_one(writer))


async def _submit_one(writer: Writer) -> Any:
    return await writer.submit(lambda conn: None)


def test_a_later_loop_takes_the_pipeline_over(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _writer(path)
    where: dict[int, str] = {}

    try:
        run(_gather(writer, range(0, 10), where))  # this loop is closed after
        run(_gather(writer, range(10, 20), where))
    finally:
        writer.stop()
    assert set(where.values()) == {threading.current_thread().name}
    assert [k for k, _ in _rows(path)] == list(range(20))


def test_a_loop_closed_before_hearing_of_its_commit_leaves_the_pipeline_to_the_next(
        tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _writer(path)
    where: dict[int, str] = {}

    async def first() -> None:
        await writer.submit(_insert(1, where))
        writer.submit(_insert(2, where))  # its loop ends before the answer comes

    async def second() -> None:
        await writer.submit(_insert(9, where))  # the thread's, while 2 still commits
        await _gather(writer, range(10, 15), where)

    try:
        asyncio.run(first())
        run(second())
        # This loop took the pipeline over.
        assert {where[k] for k in range(10, 15)} == {threading.current_thread().name}
        assert writer._submitted == writer._finished
    finally:
        writer.stop()
    assert [k for k, _ in _rows(path)] == [1, 2, *range(9, 15)]


def test_a_write_for_the_thread_waits_for_the_loop_s_writes_before_it(tmp_path: Path) -> None:
    """A on the pipeline, then B on the thread (a maintenance operation), handed in
    without waiting for A: A commits first."""
    for trial in range(10):
        path = tmp_path / f"r{trial}.db"
        writer = _writer(path)
        try:
            run(_pipeline_then_thread(writer))
        finally:
            writer.stop()
        assert _logged(path) == ["first", "A", "B"], f"trial {trial}"


async def _pipeline_then_thread(writer: Writer) -> None:
    await writer.submit(_log("first"))  # this loop owns the pipeline
    a = writer.submit(_log("A"))
    b = writer.submit(_log("B"), on_thread=True)
    await asyncio.gather(a, b)


def test_a_transaction_sqlite_rolled_back_itself_fails_with_its_own_error(
        tmp_path: Path) -> None:
    """A trigger's RAISE(ROLLBACK) ends the whole transaction: the batch fails with that
    error (not 'no such savepoint'), and the writer goes on."""
    path = tmp_path / "w.db"
    writer = _writer(path)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.k = 666 "
                     "BEGIN SELECT RAISE(ROLLBACK, 'k 666 refused'); END")
    where: dict[int, str] = {}

    async def main() -> None:
        with pytest.raises(StoreError, match="k 666 refused"):
            await writer.submit(_insert(666, where))
        got = await asyncio.gather(writer.submit(_insert(1, where)),
                                   writer.submit(_insert(666, where)),
                                   return_exceptions=True)
        assert all(isinstance(g, StoreError) and "k 666 refused" in str(g) for g in got)
        assert await writer.submit(_insert(2, where)) == 2

    try:
        run(main())
    finally:
        writer.stop()
    assert [k for k, _ in _rows(path)] == [2]


def test_the_error_of_a_failed_store_does_not_grow_with_each_refusal(tmp_path: Path) -> None:
    path = tmp_path / "w.db"

    def guard() -> None:
        raise StoreError("the file was replaced")

    writer = _writer(path, guard=guard)
    where: dict[int, str] = {}

    async def main() -> int:
        with pytest.raises(StoreError):
            await writer.submit(_insert(1, where))
        depth = 0
        for _ in range(200):
            try:
                writer.submit(_insert(2, where))
            except StoreError as exc:
                tb, depth = exc.__traceback__, 0
                while tb is not None:
                    depth, tb = depth + 1, tb.tb_next
        return depth

    try:
        assert run(main()) <= 2
    finally:
        writer.stop()
