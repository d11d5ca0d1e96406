"""The writer side of ``duro.stream()``: chunks a step attempt gives are buffered here
and written to the run's stream (beside its history) in batches.

One :class:`ChunkBuffer` per execution of a step that streams, made at its first chunk
(a step that never streams costs nothing). ``add`` may be called from the worker's loop
(async steps) or from a step's thread (sync steps): it takes a lock, appends, and only
when the buffer goes from idle to armed does it reach the loop (``call_soon_threadsafe``
once per batch, not per chunk). The loop then waits ``linger`` seconds for more chunks
and writes them in one transaction; chunks that arrive while a batch is being written
go in the next one, at once (a busy stream batches itself, as the store's writer does).
``max_batch`` chunks start a write without waiting.

Before a step's outcome is recorded the attempt's buffer is closed: the rest is written,
so a step's stream is complete when its result is in the history. A write that fails
fails the attempt (``StoreError``): it is retried, and the retry's chunks supersede
these. :class:`Streams` also wakes this process's readers after each batch.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from duro._checks import check_count
from duro.errors import StoreError

if TYPE_CHECKING:
    from duro.step._step import StepInfo, StreamSink
    from duro.worker._worker import Worker

__all__ = ["DEFAULT_STREAM_LIMIT", "ChunkBuffer", "Streams"]

DEFAULT_STREAM_LIMIT = 100_000
"""Rows (chunks and markers) kept per run's stream by default (``stream_limit``)."""
LINGER = 0.002
"""Seconds a first chunk waits for others before its batch is written: most of the
p99 latency budget (10 ms) is left to the write and the reader."""
MAX_BATCH = 1000
"""Chunks written in one transaction at most (also: this many start a write at once)."""


class Streams:
    """A worker's streams: the buffers of its step attempts, and the in-process readers
    waiting for chunks of a run (:meth:`waiter`)."""

    def __init__(self, worker: Worker, *, limit: int = DEFAULT_STREAM_LIMIT) -> None:
        check_count(limit, "stream_limit")
        self.worker = worker
        self.limit = limit
        self._lock = threading.Lock()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def open(self, info: StepInfo) -> StreamSink:
        """The attempt's buffer, made at its first chunk (from any thread)."""
        with self._lock:
            if info._stream is None:
                loop = self.worker.loop
                assert loop is not None  # steps run only while the worker does
                info._stream = ChunkBuffer(self, info, loop)
            return info._stream

    def waiter(self, run_id: str) -> asyncio.Future[None]:
        """A future resolved when a batch of the run's stream was written here."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiters.setdefault(run_id, [])
        waiting.append(fut)
        fut.add_done_callback(lambda f: self._forget(run_id, f))
        return fut

    def _forget(self, run_id: str, fut: asyncio.Future[None]) -> None:
        # A reader that stopped waiting (it read, or timed out) leaves nothing behind.
        waiting = self._waiters.get(run_id)
        if waiting is not None and fut in waiting:
            waiting.remove(fut)
            if not waiting:
                del self._waiters[run_id]

    def written(self, run_id: str) -> None:
        """A batch of the run's stream committed: wake its readers in this process."""
        for fut in self._waiters.pop(run_id, ()):
            if not fut.done():
                fut.set_result(None)


class ChunkBuffer:
    """The chunks of one execution of a step, on their way to the run's stream."""

    __slots__ = ("_armed", "_closed", "_error", "_first", "_lock", "_loop", "_pending",
                 "_task", "_timer", "execution", "info", "streams")

    def __init__(self, streams: Streams, info: StepInfo,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.streams = streams
        self.info = info
        self.execution = os.urandom(8).hex()
        """This execution's identity: an attempt run again after its worker was lost has
        the same number, so the number alone cannot tell whose chunks are whose."""
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._armed = False  # a timer or a write will take the pending chunks
        self._closed = False
        self._first = True
        self._error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, data: str) -> None:
        """Queue one chunk (its JSON text); from the loop or any thread.

        Raises:
            StoreError: An earlier batch of this attempt could not be written.
        """
        with self._lock:
            if self._closed:
                return  # the attempt is over (a sync step abandoned on timeout goes on)
            if self._error is not None:
                raise StoreError(f"the stream of this step could not be written: "
                                 f"{self._error}")
            self._pending.append(data)
            arm = not self._armed
            self._armed = True
            full = len(self._pending) == MAX_BATCH
        if arm:
            self._call(self._arm)
        elif full:
            self._call(self._write_now)

    def _call(self, fn: Callable[[], None]) -> None:
        if asyncio._get_running_loop() is self._loop:  # an async step: no thread hop
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _arm(self) -> None:
        if self._task is None or self._task.done():
            self._timer = self._loop.call_later(LINGER, self._write_now)

    def _write_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        """Write what is pending, batch after batch, until nothing is."""
        while True:
            with self._lock:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                if not batch or self._error is not None:
                    self._armed = False
                    return
            try:
                await self._write(batch)
            except Exception as exc:  # StoreError, or a bug: the attempt fails on it
                with self._lock:
                    self._error = exc
                    self._pending.clear()
                    self._armed = False
                return

    async def _write(self, batch: list[str]) -> None:
        info, streams = self.info, self.streams
        w = streams.worker
        await w.store.append_stream(info.run_id, info.seq, step=info.step,
                                    attempt=info.attempt, execution=self.execution,
                                    first=self._first, chunks=batch, now=w.clock.now(),
                                    limit=streams.limit)
        self._first = False
        streams.written(info.run_id)

    async def close(self) -> None:
        """Write every chunk still pending, then take no more (before the attempt's
        outcome is recorded).

        Raises:
            StoreError: A batch could not be written (the stream is incomplete).
        """
        self.seal()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None and not self._task.done():
            await self._task
        await self._drain()
        if self._error is not None:
            if isinstance(self._error, StoreError):
                raise self._error
            raise StoreError(f"the stream of this step could not be written: "
                             f"{self._error}") from self._error

    def seal(self) -> None:
        """Take no more chunks (the attempt is over)."""
        with self._lock:
            self._closed = True
