"""One writer connection on its own thread, with group commit.

Callers hand in small operations; the thread runs everything queued in one
transaction (each operation under its own savepoint, so one failing operation does
not undo the others) and commits once. Under load many runs' appends share a commit;
a lone caller pays one commit and nothing more: the thread never waits to fill a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
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
                                                                          BaseException]
    ) -> None:
        self._connect = connect
        self._translate = translate
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="duro-sqlite-writer", daemon=True)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.batches = 0
        self.ops = 0

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue an operation; the future resolves after its transaction commits."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._thread.is_alive():
            raise StoreError("the store is closed")
        self._queue.put((op, fut, loop))
        return fut

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
                self._commit(conn, batch)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        done: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
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
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = self._translate(exc)
            done = [(fut, None, err) for _, fut, _ in batch]
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
