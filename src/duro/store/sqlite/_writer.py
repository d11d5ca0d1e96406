"""One writer connection, with group commit: its statements on the event loop, its
commits' I/O on a thread.

Callers hand in small operations, which run in batches: one transaction (each operation
under its own savepoint, so one failing operation does not undo the others) and one
commit. Under load many runs' appends share a commit; a lone caller pays one commit and
nothing more: nothing ever waits to fill a batch.

Where a batch runs is what this module is about. The statements of a batch are short and
hold the GIL between SQLite's calls; the commit is long (its writes and fsync) and holds
nothing. So the operations of the event loop that writes (the first to write owns the
*pipeline*) run on that loop, in one callback after the tasks that queued them, and only
the ``COMMIT`` goes to the commit thread. While it commits, the loop runs on and the next
batch gathers; once committed, the loop hears of it and runs that batch. On a busy
2-core machine this is what group commit needs: a statement run on a thread waits for
the GIL each time SQLite hands it back (the loop holds it while it serves requests),
~4 times per operation, and its batch, the connection and every caller behind it wait
with it (bench_core's throughput: +2% to +40%, more the busier the machine;
docs/benchmarks.md).

The writer thread still runs whole batches, for what must not run on the loop:
operations that may run long (``on_thread``: maintenance such as a purge), those of
another event loop (a store shared by threads with loops of their own), and a batch
that found the database locked by another process: on the loop, ``BEGIN`` does not wait
for the lock (the loop must not stall for the busy timeout); the thread waits for it as
it always did.

A lone caller on a stock asyncio loop pays no hand-off at all: when nothing is queued
or being committed and the loop has nothing else ready to run, the operation commits
inline, on the caller's thread (:meth:`Writer.try_inline`).

The connection's owner at any moment: a lock, taken by the loop for a batch's statements
and released by the commit thread once it committed, or held by the writer thread (or
an inline commit) for a whole batch. While the writer thread has operations to run, the
loop's batches go to it too: one caller's writes commit in the order it made them,
whichever way they went. Closing stops new writes, waits for the batch in flight, and
commits everything handed in before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from duro.errors import StoreError

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
Item = tuple[Op, "asyncio.Future[Any]", asyncio.AbstractEventLoop]
Outcome = tuple["asyncio.Future[Any]", Any, "BaseException | None"]

__all__ = ["Writer", "fresh"]

_STOP = object()
_LOCKED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _deliver(items: list[Outcome]) -> None:
    for fut, value, exc in items:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


def _locked(exc: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included (the low byte)."""
    return (isinstance(exc, sqlite3.OperationalError)
            and (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in _LOCKED)


def _closed() -> StoreError:
    return StoreError("the store is closed")


def fresh(exc: BaseException) -> BaseException:
    """A copy of a stored error, to raise once more: raising the same object again and
    again (every write after a failure) grows its traceback without end."""
    try:
        return copy.copy(exc)  # the copy has no traceback of its own yet
    except Exception:
        return StoreError(str(exc))


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if any, after a failure (whose error is the one to
    report, not a second one from here)."""
    with contextlib.suppress(Exception):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Writer:
    """Runs write operations in batches on one connection (see the module's text).

    Args:
        connect: Opens the writer connection (on the writer thread).
        translate: Maps a database error to duro's error types.
        guard: Called after each commit, before its callers hear of it.
        busy_timeout: Seconds the writer thread waits for another process's write lock
            (the connection's own busy timeout, restored after a pipeline ``BEGIN``
            that does not wait).
    """

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], translate: Callable[[BaseException],
                                                                          BaseException],
        *, guard: Callable[[], None] | None = None, busy_timeout: float = 10.0,
    ) -> None:
        self._connect = connect
        self._translate = translate
        # Called after each commit, before its callers hear of it: raises when what was
        # committed cannot be trusted (the file was deleted or replaced, see _file.py).
        # The batch then fails, and so does every write after.
        self._guard = guard
        self._wait = f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}"
        self.failure: BaseException | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="duro-sqlite-writer", daemon=True)
        self._commits: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._committer = threading.Thread(target=self._commit_pipeline,
                                           name="duro-sqlite-commit", daemon=True)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.batches = 0
        self.ops = 0
        self.busy = 0.0  # seconds spent in transactions (metrics: the mean commit latency)
        self.inline = 0
        self._conn: sqlite3.Connection | None = None
        # Who uses the connection: the pipeline (taken on the loop, released by the
        # commit thread), the writer thread, or an inline commit.
        self._conn_lock = threading.Lock()
        # Operations handed in (under _state), and those whose callers were answered
        # (under _count_lock): equal when nothing is queued, running or committing.
        self._submitted = 0
        self._finished = 0
        self._count_lock = threading.Lock()
        # The pipeline's state and the hand-overs to the writer thread (submit, the
        # batches and the commits take turns on it; stop waits on it).
        self._state = threading.Condition(threading.Lock())
        self._home: asyncio.AbstractEventLoop | None = None
        self._pending: list[Item] = []
        self._open = False  # a batch of the pipeline is being run or committed
        self._on_thread = 0  # operations handed to the writer thread, not yet run
        self._closing = False
        self._thread_done = False

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error
        self._committer.start()

    def submit(self, op: Op, *, on_thread: bool = False) -> asyncio.Future[Any]:
        """Queue an operation; the future resolves after its transaction commits.

        ``on_thread``: run it on the writer thread (an operation that may take long,
        which must not stall the event loop).

        Raises:
            StoreError: The store is closed (or closing), or failed for good.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self.failure is not None:
            raise fresh(self.failure)
        item = (op, fut, loop)
        with self._state:
            if self._closing or self._thread_done:
                raise _closed()
            self._submitted += 1
            home = self._home
            if home is not loop and not on_thread and not self._open \
                    and (home is None or home.is_closed()):
                # The first loop to write (or the next, once that one is closed: what
                # its pipeline still held goes to the thread; its callers are gone, not
                # its writes).
                home = self._home = loop
                self._to_thread(self._pending)
                self._pending = []
            if on_thread or loop is not home:
                if loop is home and self._pending:
                    # Not ahead of this loop's writes that wait for their batch: the
                    # thread runs them first (one order for a caller's writes).
                    self._to_thread(self._pending)
                    self._pending = []
                self._to_thread([item])
                return fut
            pending = self._pending
            pending.append(item)
            first = len(pending) == 1 and not self._open
        if first:
            # After the tasks ready now (their writes join this batch), in a context of
            # its own (no task's context variables reach the operations).
            loop.call_soon(self._flush, context=contextvars.Context())
        return fut

    def try_inline(self, op: Op) -> tuple[bool, Any]:
        """Commit ``op`` now on this thread if the writer is idle and the running event
        loop has nothing else ready; (False, None) otherwise (then :meth:`submit` it).

        Raises what the operation raised (translated), after rolling it back.
        """
        if self.failure is not None:
            raise fresh(self.failure)
        conn = self._conn
        if conn is None or self._submitted != self._finished or self._closing:
            return False, None
        try:
            ready = asyncio.get_running_loop()._ready  # type: ignore[attr-defined]
        except (RuntimeError, AttributeError):
            return False, None  # not a stock asyncio loop: no way to tell, use the thread
        if ready:
            return False, None  # others are running: group commit serves them better
        if not self._conn_lock.acquire(blocking=False):
            return False, None
        try:
            if self._submitted != self._finished or self._conn is not conn \
                    or self._closing:
                return False, None
            began = time.perf_counter()
            try:
                conn.execute("BEGIN IMMEDIATE")
                value = op(conn)
                conn.execute("COMMIT")
                self._check_commit()
            except BaseException as exc:  # an interrupt too: never leave it open
                _rollback(conn)
                if not isinstance(exc, Exception):
                    raise
                raise self._translate(exc) from None
            self._counted(began, 1)
            self.inline += 1
            return True, value
        finally:
            self._conn_lock.release()

    def stop(self) -> None:
        """Refuse new writes, commit every one handed in, and stop both threads (from
        any thread: off the pipeline's loop, after the batch it is building)."""
        with self._state:
            self._closing = True
            if self._home is None or _running_loop() is not self._home:
                while self._open:  # being built on the loop, or committing: wait
                    self._state.wait()
            # On the loop's own thread no batch is being built (we are running); one
            # committing ends on the commit thread, before the writer thread's next.
            left = self._to_thread(self._pending)
            self._pending = []
        self._refuse(left)
        if self._committer.is_alive():
            self._commits.put(_STOP)
            self._committer.join()
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _to_thread(self, items: list[Item]) -> list[Item]:
        """Hand ``items`` to the writer thread (under ``_state``); those it cannot take
        any more (it has stopped) are returned, for :meth:`_refuse`."""
        if not items:
            return []
        if self._thread_done:
            return items
        self._on_thread += len(items)
        for item in items:
            self._queue.put(item)
        return []

    def _refuse(self, items: list[Item]) -> None:
        if items:
            self._answered(items, [(fut, None, _closed()) for _, fut, _ in items])

    # -- the pipeline: statements on the loop, the commit on the commit thread ---------

    def _flush(self) -> None:
        """Run the pending operations' statements in a transaction and hand its commit
        to the commit thread (on the pipeline's loop)."""
        with self._state:
            if self._open or not self._pending:
                return
            batch, self._pending = self._pending, []
            conn = self._conn
            if self._closing or self._on_thread or conn is None or self.failure is not None \
                    or not self._conn_lock.acquire(blocking=False):
                # Closing, failed, or the writer thread has work (it may hold the lock):
                # it runs this batch after its own (or fails it, after a failure).
                left = self._to_thread(batch)
                batch = []
            else:
                self._open = True
        if not batch:
            self._refuse(left)
            return
        assert conn is not None
        began = time.perf_counter()
        begun = False
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                conn.execute(self._wait)
            begun = True
            done, rolled_back = self._statements(conn, batch)
        except BaseException as exc:  # BEGIN, a savepoint, an interrupt: nothing commits
            with contextlib.suppress(Exception):
                conn.execute(self._wait)  # interrupted before the finally: restore it
            _rollback(conn)  # also one left open before us: not for the next batch
            self._end_pipeline_batch()
            if not begun and _locked(exc):
                # Another process writes: the thread waits for it, not the loop.
                with self._state:
                    left = self._to_thread(batch)
                self._refuse(left)
            else:
                err = self._failed(exc)
                self._answered(batch, [(fut, None, err) for _, fut, _ in batch])
            if not isinstance(exc, Exception):
                raise
            self._again()
            return
        if rolled_back:  # a lone operation failed: nothing to commit
            self._end_pipeline_batch()
            self._answered(batch, done)
            self._again()
            return
        self._commits.put((done, batch[0][2], began))

    def _end_pipeline_batch(self) -> None:
        """The connection back, the pipeline free (a batch committed or given up)."""
        with self._state:
            self._conn_lock.release()
            self._open = False
            self._state.notify_all()

    def _again(self) -> None:
        if self._pending:  # a hint: _flush looks again under the lock
            asyncio.get_running_loop().call_soon(self._flush, context=contextvars.Context())

    def _resume(self, items: list[Outcome]) -> None:
        """On the pipeline's loop, once its batch committed: answer its callers, then
        run the batch that gathered meanwhile (after the tasks just answered: their
        next writes join it)."""
        _deliver(items)
        self._again()

    def _commit_pipeline(self) -> None:
        """The commit thread: commits the transactions the pipeline built."""
        while True:
            job = self._commits.get()
            if job is _STOP:
                return
            done, loop, began = job
            conn = self._conn
            assert conn is not None
            done = self._commit_now(conn, done, began)
            with self._count_lock:
                self._finished += len(done)
            self._end_pipeline_batch()
            # A closed loop: nobody there waits (a later loop takes the pipeline over).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._resume, done)

    # -- the writer thread: whole batches -----------------------------------------------

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._startup_error = exc
            self._thread_done = True
            self._ready.set()
            return
        self._conn = conn
        self._ready.set()
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        stop = False
        try:
            while not stop:
                batch = [get()]
                while True:
                    try:
                        batch.append(get_nowait())
                    except queue.Empty:
                        break
                if any(item is _STOP for item in batch):
                    stop = True
                    batch = [item for item in batch if item is not _STOP]
                    if not batch:
                        break
                with self._conn_lock:
                    done = self._commit(conn, batch)
                with self._state:  # before the answers: their callers' next writes
                    self._on_thread -= len(batch)  # may take the pipeline again
                self._answered(batch, done)
        finally:
            with self._state:
                self._thread_done = True
                left: list[Item] = []
                while True:  # handed in after the stop (none, when closed in order)
                    try:
                        item = get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        left.append(item)
            self._refuse(left)
            with self._conn_lock:
                self._conn = None
                conn.close()

    def _check_commit(self) -> None:
        if self._guard is not None:
            try:
                self._guard()
            except BaseException as exc:
                self.failure = exc
                raise

    def _failed(self, exc: BaseException) -> BaseException:
        """What the callers of a failed batch get: the error translated (an interrupt
        is not theirs to receive)."""
        if isinstance(exc, Exception):
            return self._translate(exc)
        return StoreError(f"the write was interrupted ({type(exc).__name__})")

    def _statements(self, conn: sqlite3.Connection,
                    batch: list[Item]) -> tuple[list[Outcome], bool]:
        """Run ``batch``'s operations in the open transaction, each under a savepoint
        (a lone one without: its failure rolls the transaction back); their outcomes,
        and whether the transaction was rolled back (nothing to commit)."""
        if len(batch) == 1:
            op, fut, _ = batch[0]
            try:
                return [(fut, op(conn), None)], False
            except Exception as exc:
                if conn.in_transaction:  # SQLite may have rolled it back itself
                    conn.execute("ROLLBACK")
                return [(fut, None, self._translate(exc))], True
        done: list[Outcome] = []
        for op, fut, _ in batch:
            conn.execute("SAVEPOINT op")
            try:
                value = op(conn)
            except Exception as exc:
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (a trigger's
                    # RAISE(ROLLBACK), a full disk): the batch fails with this error.
                    raise
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                done.append((fut, None, self._translate(exc)))
            else:
                conn.execute("RELEASE op")
                done.append((fut, value, None))
        return done, False

    def _commit(self, conn: sqlite3.Connection, batch: list[Item]) -> list[Outcome]:
        """A whole batch on the writer thread: begin, statements, commit; the answers
        (for the caller to send)."""
        if self.failure is not None:  # queued before the failure: never run
            return [(fut, None, fresh(self.failure)) for _, fut, _ in batch]
        began = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            done, rolled_back = self._statements(conn, batch)
        except BaseException as exc:  # the thread lives on: every caller is answered
            _rollback(conn)
            err = self._failed(exc)
            self._counted(began, len(batch))
            return [(fut, None, err) for _, fut, _ in batch]
        return done if rolled_back else self._commit_now(conn, done, began)

    def _commit_now(self, conn: sqlite3.Connection, done: list[Outcome],
                    began: float) -> list[Outcome]:
        """Commit the open transaction whose operations gave ``done`` (the pipeline's,
        on the commit thread, or the writer thread's own); the answers: ``done``, or the
        commit's failure for each."""
        try:
            conn.execute("COMMIT")
            self._check_commit()
        except BaseException as exc:
            _rollback(conn)
            err = self._failed(exc)
            done = [(fut, None, err) for fut, _, _ in done]
        self._counted(began, len(done))
        return done

    def _counted(self, began: float, ops: int) -> None:
        """A transaction's figures (metrics: batches, operations, time in transactions)."""
        self.busy += time.perf_counter() - began
        self.batches += 1
        self.ops += ops

    def _answered(self, batch: list[Item], done: list[Outcome]) -> None:
        """Count ``batch`` finished and tell each caller, on its own loop."""
        with self._count_lock:
            self._finished += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        for (_, _, loop), item in zip(batch, done, strict=True):
            by_loop.setdefault(loop, []).append(item)
        for loop, items in by_loop.items():
            self._post(loop, items)

    @staticmethod
    def _post(loop: asyncio.AbstractEventLoop, items: list[Outcome]) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_deliver, items)
