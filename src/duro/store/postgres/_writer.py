"""One writer connection with group commit, pipelined, surviving lost connections.

Callers hand in small operations; a task runs everything queued in one transaction and
commits once. Under load many runs' appends share a commit; a lone caller pays one
commit and nothing more: the writer never waits to fill a batch.

Each batch is one round trip whatever its size: a stamp of the writer's commit marker
(see below), every operation's statements and a Sync, sent together in pipeline mode.
The statements up to the Sync are one *implicit* transaction: the Sync commits it, or
rolls it back if any statement failed (no ``BEGIN``/``COMMIT``: two statements fewer
per batch; reading a result midway uses a flush request, not a Sync).

**Operations.** An operation is ``async def op(conn) -> finish``: it queues its statements
on ``conn`` (awaiting a read only when it must decide something) and returns an async
``finish()`` that turns the results into its return value once the batch committed.
Operations do not use savepoints (a savepoint per operation would cost round trips), so
they keep one rule: **an operation raises only when it wrote nothing** — before queueing
any write (e.g. "workflow id already used"), or in ``finish()`` when its writes matched no
row (a stale fencing epoch: the fenced append is one statement that writes nothing then).
Nor may an operation open ``conn.transaction()`` or a nested pipeline, or change a
connection setting: psycopg sends a Sync for those, which would commit the batch midway.
A *database* error aborts the whole transaction; the writer then drops the connection
(see :meth:`Writer._forget_conn`) and runs each operation of the batch in a transaction
of its own on a fresh one, so only the faulty one fails. Operations that write a run's
history are fenced by its length as well as its epoch, so when one fails, a later write
of the same run in the batch fails too instead of committing past it.

**Lost connections.** The writer reconnects with backoff for up to ``reconnect_timeout``
seconds, so a database restart only delays callers. A batch cut off by a lost connection
may or may not have committed; the writer finds out from ``writer_commits``. Every
transaction first inserts the writer's id and the batch's number there
(``writer_stamp``). After reconnecting, the writer inserts that key itself, marked fenced
(``writer_settle``): the insert waits for a transaction of the old connection still
holding the key, then either finds it taken (the lost batch committed) or goes through
(it did not, and a late transaction of the old connection now fails on the key before
it writes anything). (Asking ``txid_status`` instead would need the transaction id before
the commit is sent: a second round trip per batch.) If the batch did not commit, it runs
again; if it did, each operation says what to do (its ``ambiguous`` policy): run again
(idempotent operations), run a compensation and fail, or just fail with a
:class:`~duro.errors.StoreError` (the worker then releases the run and replays it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from duro.errors import StoreError

__all__ = ["Ambiguous", "Finish", "Op", "Writer", "connection_lost"]

log = logging.getLogger("duro.store.postgres")

Finish = Callable[[], Awaitable[Any]]
Op = Callable[[psycopg.AsyncConnection[Any]], Awaitable[Finish]]
Compensate = Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]
Ambiguous = Literal["retry", "fail"] | Compensate
"""What to do when the commit of an operation's batch is known to have happened but its
results were lost with the connection: ``"retry"`` (the operation is idempotent),
``"fail"``, or a compensation to run (on a fresh connection) before failing."""

_STOP: Any = object()


def connection_lost(conn: psycopg.AsyncConnection[Any] | None, exc: BaseException) -> bool:
    """True when ``exc`` means the connection is gone (not a problem of the statement)."""
    if isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.CrashShutdown
                  | psycopg.errors.CannotConnectNow | psycopg.errors.IdleSessionTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    return conn is None or conn.closed or conn.broken


class _Lost(Exception):
    """The connection went away during batch ``number`` (backend ``pid``)."""

    def __init__(self, cause: BaseException, number: int, pid: int) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.number = number
        self.pid = pid




@dataclass(slots=True)
class _Job:
    op: Op
    fut: asyncio.Future[Any]
    notify: bool
    ambiguous: Ambiguous
    result: list[Any] = field(default_factory=list)


def _deliver(job: _Job, value: Any, exc: BaseException | None) -> None:
    if job.fut.done():
        return
    if exc is not None:
        job.fut.set_exception(exc)
    else:
        job.fut.set_result(value)


def short_error(exc: BaseException) -> str:
    """A one-line message for a psycopg error (libpq's are multi-line)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


class Writer:
    """Runs write operations in batches on one connection (an asyncio task).

    Args:
        connect: Opens a new autocommit connection (search path set).
        translate: Maps a database error to duro's error types.
        queries: The ``writer_*`` statements of ``queries.sql``.
        notify: ``(sql, params)`` queued last when any operation of the batch asked
            for a wake-up notification.
        reconnect_timeout: Seconds a batch waits for a lost database to come back.
    """

    #: How long settling a lost batch waits for the old connection's transaction before
    #: ending it.
    stuck_after = 1.0
    #: Every this many batches, one also deletes the writer's older keys.
    prune_every = 256

    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
        translate: Callable[[BaseException], BaseException],
        *,
        queries: Mapping[str, str],
        notify: tuple[str, dict[str, Any]],
        reconnect_timeout: float,
    ) -> None:
        self._connect = connect
        self._translate = translate
        self._sql = {name: queries[name] for name in ("writer_stamp", "writer_prune",
                     "writer_settle", "writer_gone", "writer_end_stuck")}
        self.writer_id = uuid.uuid4().hex
        self._number = 0
        self._notify_sql, self._notify_params = notify
        self.reconnect_timeout = reconnect_timeout
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._outage_logged = False
        self._quiet_reconnect = False  # the next reconnect follows a statement error
        self.batches = 0
        self.ops = 0
        self.busy = 0.0  # seconds spent writing batches (metrics: the mean commit latency)
        self.reconnects = 0

    def start(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Start on an already open connection."""
        self._conn = conn
        self._task = asyncio.get_running_loop().create_task(self._run(), name="duro-pg-writer")

    def submit(self, op: Op, *, notify: bool = False,
               ambiguous: Ambiguous = "fail") -> asyncio.Future[Any]:
        """Queue an operation; the future resolves after its transaction commits."""
        if self._task is None or self._task.done():
            raise StoreError("the store is closed")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(op, fut, notify, ambiguous))
        return fut

    async def stop(self) -> None:
        """Finish what is queued, then close the connection."""
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(_STOP)
            await asyncio.shield(self._task)
        self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(self._sql["writer_gone"], {"writer": self.writer_id})
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        stop = False
        while not stop:
            batch = [await self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            if any(job is _STOP for job in batch):
                stop = True
                batch = [job for job in batch if job is not _STOP]
            if not batch:
                continue
            began = time.perf_counter()
            try:
                await self._process(batch)
            except Exception as exc:  # never let the writer die with callers waiting
                log.exception("writer batch failed unexpectedly")
                for job in batch:
                    _deliver(job, None, StoreError(f"database write failed: {exc}"))
            self.busy += time.perf_counter() - began
            self.batches += 1
            self.ops += len(batch)

    async def _process(self, batch: list[_Job]) -> None:
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            try:
                conn = await self._ensure_conn(deadline)
            except StoreError as exc:
                for job in batch:
                    _deliver(job, None, exc)
                return
            try:
                outcomes = await self._transaction(conn, batch)
            except _Lost as lost:
                await self._discard_conn()
                if await self._committed(lost, deadline) is False:
                    if time.monotonic() < deadline:
                        continue  # it did not (and now never will): run it again
                    for job in batch:
                        _deliver(job, None, StoreError(
                            f"database write failed: the connection was lost again and "
                            f"again for {self.reconnect_timeout:g}s "
                            f"({short_error(lost.cause)})"))
                    return
                await self._settle_ambiguous(batch, lost, deadline)
                return
            except psycopg.Error as exc:
                await self._forget_conn()
                if len(batch) == 1:
                    _deliver(batch[0], None, self._translate(exc))
                else:
                    for job in batch:  # isolate the faulty operation
                        await self._process([job])
                return
            for job, (value, error) in zip(batch, outcomes, strict=True):
                _deliver(job, value, error)
            return

    async def _transaction(
        self, conn: psycopg.AsyncConnection[Any], batch: list[_Job]
    ) -> list[tuple[Any, BaseException | None]]:
        self._number += 1
        number, pid = self._number, conn.info.backend_pid
        finishers: list[Finish | BaseException] = []
        closed_here = False
        try:
            # Leaving the block sends the Sync that commits (one round trip in all) and
            # reads every result; a Sync of our own before it would cost a second one.
            async with conn.pipeline():
                try:
                    key = {"writer": self.writer_id, "batch": number}
                    await conn.execute(self._sql["writer_stamp"], key)
                    if number % self.prune_every == 0:
                        await conn.execute(self._sql["writer_prune"], key)
                    for job in batch:
                        try:
                            finishers.append(await job.op(conn))
                        except psycopg.Error:
                            raise
                        except Exception as exc:  # raised before the operation wrote anything
                            finishers.append(exc)
                    if any(job.notify for job in batch):
                        await conn.execute(self._notify_sql, self._notify_params)
                except BaseException as exc:
                    if not (isinstance(exc, psycopg.Error) and exc.sqlstate):
                        # Not an error the server answered (which rolls the transaction
                        # back): leaving the block sends a Sync, and that would commit
                        # what is queued so far. Without a connection it cannot.
                        closed_here = not (conn.closed or conn.broken)
                        await conn.close()
                    raise
        except psycopg.Error as exc:
            if connection_lost(conn, exc) and not closed_here:
                raise _Lost(exc, number, pid) from exc
            raise
        outcomes: list[tuple[Any, BaseException | None]] = []
        for fin in finishers:
            if isinstance(fin, BaseException):
                outcomes.append((None, self._translate(fin)))
                continue
            try:
                outcomes.append((await fin(), None))
            except Exception as exc:
                outcomes.append((None, self._translate(exc)))
        self._outage_logged = False
        return outcomes

    # -- lost connections ----------------------------------------------------------------

    async def _ensure_conn(self, deadline: float) -> psycopg.AsyncConnection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        await self._discard_conn()
        delay = 0.05
        while True:
            try:
                self._conn = await self._connect()
            except psycopg.Error as exc:
                if not self._outage_logged:
                    self._outage_logged = True
                    log.warning("lost the database connection; reconnecting (%s)",
                                short_error(exc))
                if time.monotonic() + delay > deadline:
                    raise StoreError(f"the database is unreachable (gave up after "
                                     f"{self.reconnect_timeout:g}s): {short_error(exc)}") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self.reconnects += 1
            if not self._quiet_reconnect:
                log.info("reconnected to the database")
            self._quiet_reconnect = False
            return self._conn

    async def _discard_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _forget_conn(self) -> None:
        """A statement of the batch failed: continue on a fresh connection.

        Rolling back is not enough. psycopg counts a statement as prepared as soon as it
        sends its Parse, and a pipeline aborted by an earlier statement's error skips
        that Parse on the server: from then on every use of the statement fails with
        'prepared statement "_pg3_N" does not exist', for this writer and for good. A
        new connection has no such state, and statement errors are rare (operations
        check what they can before writing), so the reconnect costs nothing that shows.
        """
        self._quiet_reconnect = True
        await self._discard_conn()

    async def _committed(self, lost: _Lost, deadline: float) -> bool | None:
        """Did the lost batch commit? None when the database cannot say by ``deadline``.

        If the lost connection's backend still holds the batch's key after
        :attr:`stuck_after` seconds, it is ended (its transaction rolls back).
        """
        key = {"writer": self.writer_id, "batch": lost.number}
        while True:
            try:
                conn = await self._ensure_conn(deadline)
                async with conn.transaction():
                    await conn.execute(
                        f"SET LOCAL lock_timeout = {int(self.stuck_after * 1000)}")
                    cur = await conn.execute(self._sql["writer_settle"], key)
                    inserted = await cur.fetchone() is not None
            except StoreError:
                return None
            except psycopg.errors.LockNotAvailable:
                # End it before looking at the deadline: giving up with the old
                # transaction alive would leave it holding its locks (and maybe commit).
                if lost.pid != conn.info.backend_pid:
                    log.warning("ending the lost connection's transaction (backend %d)",
                                lost.pid)
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute(self._sql["writer_end_stuck"], {"pid": lost.pid})
                if time.monotonic() >= deadline:
                    return None
                continue
            except psycopg.Error as exc:
                if connection_lost(self._conn, exc) and time.monotonic() < deadline:
                    await self._discard_conn()
                    continue
                return None
            return not inserted

    async def _settle_ambiguous(self, batch: list[_Job], lost: _Lost, deadline: float) -> None:
        message = (f"the database connection was lost while committing "
                   f"({short_error(lost.cause)}); the write may have been recorded")
        for job in batch:
            if job.ambiguous == "retry":
                await self._process([job])
                continue
            if callable(job.ambiguous):
                try:
                    conn = await self._ensure_conn(deadline)
                    await job.ambiguous(conn)
                except Exception as exc:
                    log.warning("could not undo an uncertain write: %s", exc)
            _deliver(job, None, StoreError(message))
