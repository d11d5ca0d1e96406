"""One writer connection on its own thread, with group commit.

Callers hand in small operations; the thread runs everything queued in one
transaction (each operation under its own savepoint, so one failing operation does
not undo the others) and commits once. Under load many runs' appends share a commit;
a lone caller pays one commit and nothing more: the thread never waits to fill a batch.

A lone caller does not even pay the two thread hand-offs (to the writer thread and back,
~0.1 ms together, most of a step's overhead besides the commit): when nothing is queued
or being committed and the event loop has nothing else ready to run, the operation
commits inline, on the caller's thread. As soon as anything else is going on, writes go
through the thread again and share its commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from duro.errors import StoreError

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

__all__ = ["Writer"]

_STOP = object()


def _deliver(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, exc in items:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


class Writer:
    """Runs write operations in batches on a dedicated thread."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], translate: Callable[[BaseException],
                                                                          BaseException],
        *, guard: Callable[[], None] | None = None,
    ) -> None:
        self._connect = connect
        self._translate = translate
        # Called after each commit, before its callers hear of it: raises when what was
        # committed cannot be trusted (the file was deleted or replaced, see _file.py).
        # The batch then fails, and so does every write after.
        self._guard = guard
        self.failure: BaseException | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="duro-sqlite-writer", daemon=True)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.batches = 0
        self.ops = 0
        self.busy = 0.0  # seconds spent in transactions (metrics: the mean commit latency)
        self.inline = 0
        self._conn: sqlite3.Connection | None = None
        # The connection is used by the writer thread and, for inline commits, by the
        # caller's thread; this lock makes those turns exclusive.
        self._conn_lock = threading.Lock()
        # Operations handed to the thread, and those it has finished: equal when it is
        # idle with nothing queued.
        self._submitted = 0
        self._finished = 0
        self._count_lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue an operation; the future resolves after its transaction commits."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self.failure is not None:
            raise self.failure
        if not self._thread.is_alive():
            raise StoreError("the store is closed")
        with self._count_lock:
            self._submitted += 1
        self._queue.put((op, fut, loop))
        return fut

    def try_inline(self, op: Op) -> tuple[bool, Any]:
        """Commit ``op`` now on this thread if the writer is idle and the running event
        loop has nothing else ready; (False, None) otherwise (then :meth:`submit` it).

        Raises what the operation raised (translated), after rolling it back.
        """
        if self.failure is not None:
            raise self.failure
        conn = self._conn
        if conn is None or self._submitted != self._finished:
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
            if self._submitted != self._finished or not self._thread.is_alive():
                return False, None
            began = time.perf_counter()
            try:
                conn.execute("BEGIN IMMEDIATE")
                value = op(conn)
                conn.execute("COMMIT")
                self._check_commit()
            except Exception as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._translate(exc) from None
            self.busy += time.perf_counter() - began
            self.batches += 1
            self.ops += 1
            self.inline += 1
            return True, value
        finally:
            self._conn_lock.release()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._startup_error = exc
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
                    self._commit(conn, batch)
                    with self._count_lock:
                        self._finished += len(batch)
        finally:
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

    def _commit(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        done: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        if self.failure is not None:  # queued before the failure: never run
            for _, fut, loop in batch:
                self._post(loop, [(fut, None, self.failure)])
            return
        began = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            single = len(batch) == 1
            for op, fut, loop in batch:
                if single:
                    # No savepoint needed: a failure rolls back the whole transaction.
                    try:
                        done.append((fut, op(conn), None))
                    except Exception as exc:
                        conn.execute("ROLLBACK")
                        self._post(loop, [(fut, None, self._translate(exc))])
                        return
                    continue
                conn.execute("SAVEPOINT op")
                try:
                    value = op(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    done.append((fut, None, self._translate(exc)))
                else:
                    conn.execute("RELEASE op")
                    done.append((fut, value, None))
            conn.execute("COMMIT")
            self._check_commit()
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = self._translate(exc)
            done = [(fut, None, err) for _, fut, _ in batch]
        self.busy += time.perf_counter() - began
        self.batches += 1
        self.ops += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_, _, loop), item in zip(batch, done, strict=True):
            by_loop.setdefault(loop, []).append(item)
        for loop, items in by_loop.items():
            self._post(loop, items)

    @staticmethod
    def _post(loop: asyncio.AbstractEventLoop, items: list[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_deliver, items)
