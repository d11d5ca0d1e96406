"""The PostgreSQL store: many worker processes on many hosts share one database.

Writes go through one connection per store with group commit (see ``_writer``); reads
use a connection pool; claims skip rows other workers are claiming (``FOR UPDATE SKIP
LOCKED``); wake-ups travel by ``LISTEN/NOTIFY`` (see ``_listen``). Every operation is the
shared store's (``store/_base``) over the named queries of ``queries.sql``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from duro.errors import (
    DatabaseReadOnlyError,
    DataRejectedError,
    RunNotFoundError,
    StoreError,
    WorkflowAlreadyStartedError,
)
from duro.store._base import Ambiguous, Op, Params, SqlStore
from duro.store._protocol import Fenced
from duro.store._records import EventRecord, LoadedRun, event_records
from duro.store._rows import Row, histories_wanted, loaded_runs
from duro.store._rules import lock_key
from duro.store.postgres._listen import Listener
from duro.store.postgres._liveness import Liveness
from duro.store.postgres._pool import ReadPool
from duro.store.postgres._schema import check_current, migrate
from duro.store.postgres._sql import queries
from duro.store.postgres._tx import pg_ambiguous, pg_op
from duro.store.postgres._url import parse_postgres_url, redact
from duro.store.postgres._writer import Writer, connection_lost, short_error

__all__ = ["PostgresStore"]

log = logging.getLogger("duro.store.postgres")
_Q = queries()
_T = TypeVar("_T")
Conn = psycopg.AsyncConnection[Any]


def _rejected(exc: psycopg.Error) -> DataRejectedError | None:
    """The error for a write the database refused for its values, or None.

    psycopg files "program limit exceeded" (SQLSTATE class 54: an index row too large,
    which a very long workflow id or key causes) under OperationalError, with the
    outages; called "database unavailable", such a write was retried forever."""
    sqlstate = exc.sqlstate or ""
    if sqlstate == "54000":
        return DataRejectedError(
            f"the database refused a value too large to index (PostgreSQL indexes about "
            f"2,700 bytes per entry at most: shorten the workflow id, queue or key) "
            f"({short_error(exc)})")
    if sqlstate.startswith("54") or isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return DataRejectedError(f"the database refused a value ({short_error(exc)})")
    return None


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, (Fenced, StoreError, WorkflowAlreadyStartedError, RunNotFoundError)):
        return exc
    if isinstance(exc, psycopg.errors.UniqueViolation):
        diag = exc.diag.constraint_name or ""
        what = "this operation's outcome is already recorded" \
            if diag == "events_outcome_once" else "a row with this key already exists"
        return StoreError(f"{what} ({short_error(exc)})")
    if isinstance(exc, psycopg.Error) and (rejected := _rejected(exc)) is not None:
        return rejected
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreError(f"database unavailable: {short_error(exc)}")
    if isinstance(exc, psycopg.Error):
        return StoreError(f"database error: {short_error(exc)}")
    return exc


_CATCH_UP_RUNS = 5000
"""Pending runs brought into the stats rollup per transaction."""
_CATCH_UP_BATCHES = 200
"""At most this many batches per stats read (1,000,000 runs); what is left is read as
pending."""


class PostgresStore(SqlStore):
    """A :class:`~duro.store.Store` on PostgreSQL (psycopg 3, async).

    Args:
        url: ``postgresql://user:password@host:port/dbname`` with libpq's query options,
            plus duro's: ``schema`` (default ``duro``), ``migrate`` (default true; false
            leaves migrations to ``duro db migrate``), ``pool_size`` (read connections,
            default 8), ``reconnect_timeout`` (seconds a write waits for a lost database,
            default 60).
    """

    stats_batches = (_CATCH_UP_RUNS, _CATCH_UP_BATCHES)

    def __init__(self, url: str, **overrides: Any) -> None:
        self.url = url
        sync = overrides.pop("synchronous", None)
        if sync is not None and str(sync).upper() not in ("FULL", "EXTRA"):
            raise StoreError(f"synchronous={sync!r} is a SQLite setting; on PostgreSQL every "
                             f"commit is durable as the server's synchronous_commit says")
        options = parse_postgres_url(url)
        if overrides:
            options = dataclasses.replace(options, **overrides)
        self.options = options
        self.schema = options.schema
        self.channel = f"duro.{options.schema}"
        self.token = uuid.uuid4().hex
        self._wake_params = {"channel": self.channel, "token": self.token}
        self._writer: Writer | None = None
        self._pool: ReadPool | None = None
        self._listener: Listener | None = None
        self._liveness: Liveness | None = None

    def __repr__(self) -> str:
        return f"<PostgresStore {redact(self.url)}>"

    # -- connections ---------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        info = psycopg.conninfo.conninfo_to_dict(self.options.conninfo)
        extra = str(info.get("options") or "")
        if self.options.read_only:  # the server refuses any write, whatever the role
            extra += " -c default_transaction_read_only=on"
        return {"options": f"{extra} -c search_path={self.schema}".strip()}

    async def _connect(self) -> Conn:
        return await psycopg.AsyncConnection.connect(
            self.options.conninfo, autocommit=True, **self._connect_kwargs())

    def _where(self) -> str:
        return redact(self.url.split("?", 1)[0])

    async def open(self) -> None:
        """Connect, migrate (unless ``migrate=false``), open the read pool, start writing."""
        try:
            conn = await self._connect()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self._where()}: "
                             f"{short_error(exc)}") from None
        if self.options.read_only:
            await self._open_read_only(conn)
            return
        try:
            if self.options.migrate:
                applied = await migrate(conn, self.schema)
                if applied:
                    log.info("applied migrations %s to schema %s", applied, self.schema)
            else:
                await check_current(conn, self.schema)
            await conn.execute(_Q["writer_forget_stale"])
            pool = await self._open_pool(f"duro-{self.schema}")
        except psycopg.Error as exc:
            await conn.close()
            raise StoreError(f"cannot prepare the PostgreSQL store at {self._where()}: "
                             f"{short_error(exc)}") from None
        except BaseException:
            await conn.close()
            raise
        self._pool = pool
        self._writer = Writer(
            self._connect, _translate, queries=_Q,
            notify=(_Q["notify"], {"channel": self.channel, "token": self.token}),
            reconnect_timeout=self.options.reconnect_timeout)
        self._writer.start(conn)
        self._listener = Listener(self._connect, self.channel, self.token)
        self._liveness = Liveness(self._connect, f"duro.worker.{self.schema}.")

    async def _open_pool(self, name: str) -> ReadPool:
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.options.conninfo, min_size=1, max_size=self.options.pool_size,
            kwargs={"autocommit": True, **self._connect_kwargs()}, open=False,
            name=name, timeout=10.0)
        await pool.open(wait=True, timeout=30.0)
        return ReadPool(pool)

    async def _open_read_only(self, conn: Conn) -> None:
        """Check the schema is this duro's and open the read pool: nothing else."""
        try:
            await check_current(conn, self.schema)
            pool = await self._open_pool(f"duro-{self.schema}-ro")
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the PostgreSQL store at {self._where()}: "
                             f"{short_error(exc)}") from None
        finally:
            await conn.close()
        self._pool = pool

    async def close(self) -> None:
        """Flush pending writes and disconnect."""
        if self._liveness is not None:
            await self._liveness.close()
            self._liveness = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when another process may have made work claimable."""
        if self._listener is None:
            return lambda: None
        return self._listener.add(callback)

    @property
    def write_stats(self) -> tuple[int, int]:
        """(transactions, operations) committed so far: ops/transactions is the batching."""
        return (self._writer.batches, self._writer.ops) if self._writer else (0, 0)

    @property
    def write_seconds(self) -> float:
        """Seconds spent committing so far (with :attr:`write_stats`: the mean latency
        of a transaction)."""
        return self._writer.busy if self._writer else 0.0

    async def _write(self, op: Op, *, notify: bool = False,
                     ambiguous: Ambiguous = "fail") -> Any:
        if self._writer is None:
            if self.options.read_only:
                raise DatabaseReadOnlyError(f"{self._where()} was opened read-only (mode=ro)")
            raise StoreError("the store is not open")
        return await self._writer.submit(pg_op(op), notify=notify,
                                         ambiguous=pg_ambiguous(ambiguous))

    async def _fetch(self, query: str, params: Params) -> list[Row]:
        rows: list[Row] = await self._read(query, params, dicts=True)
        return rows

    async def _fetch_all(self, queries: Sequence[str], params: Params) -> list[list[Row]]:
        """As :meth:`_fetch`, each query in turn in one repeatable-read transaction: one
        snapshot, whatever commits meanwhile."""

        async def read(conn: Conn) -> list[list[Row]]:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                out: list[list[Row]] = []
                for name in queries:
                    cur = conn.cursor(row_factory=dict_row)
                    await cur.execute(_Q[name], params)
                    rows: list[Any] = await cur.fetchall()
                    out.append(rows)
                return out

        return await self._reading(read)

    async def _read(self, name: str, params: Params, *,
                    dicts: bool = False, binary: bool = False) -> list[Any]:
        async def read(conn: Conn) -> list[Any]:
            cur = (conn.cursor(row_factory=dict_row, binary=binary) if dicts
                   else conn.cursor(binary=binary))
            await cur.execute(_Q[name], params)
            return await cur.fetchall()

        return await self._reading(read)

    async def _reading(self, read: Callable[[Conn], Awaitable[_T]]) -> _T:
        """``read`` on a pooled connection; on a fresh one if the connection was lost."""
        if self._pool is None:
            raise StoreError("the store is not open")
        for attempt in range(4):
            try:
                async with self._pool.connection() as conn:
                    try:
                        return await read(conn)
                    except psycopg.Error:
                        # Closed, the pool replaces it: after an error inside a pipeline
                        # psycopg may believe in prepared statements the server never
                        # made (see Writer._forget_conn).
                        await conn.close()
                        raise
            except PoolTimeout:
                raise StoreError(f"no connection to PostgreSQL at {self._where()} became "
                                 f"available (is the database reachable?)") from None
            except psycopg.Error as exc:
                if not connection_lost(None, exc) or attempt == 3:
                    raise _translate(exc) from None
                # The server restarted or dropped us: replace dead pooled connections.
                await self._pool.check()
                await asyncio.sleep(0.05 * 2 ** attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reads of histories --------------------------------------------------------

    async def load_history(self, run_id: str) -> list[EventRecord]:
        """See :meth:`duro.store.ClientStore.load_history`."""
        # Binary results: no hex decoding of each bytea payload (a long history loads
        # ~20% faster); the Python values are the same.
        return event_records(run_id, await self._read("history", {"run_id": run_id},
                                                      binary=True))

    async def load_runs(
        self, run_ids: Sequence[str], *, history: Collection[str] | None = None
    ) -> dict[str, LoadedRun]:
        """See :meth:`duro.store.WorkerStore.load_runs`."""
        ids, want = histories_wanted(run_ids, history)

        async def read(conn: Conn) -> dict[str, LoadedRun]:
            # Pipelined: the three reads cost one round trip for the whole batch.
            async with conn.pipeline():
                msgs = conn.cursor()
                await msgs.execute(_Q["runs_with_messages"], {"ids": ids})
                events = conn.cursor(binary=True)
                beats = conn.cursor()
                if want:
                    await events.execute(_Q["runs_history"], {"ids": want})
                    await beats.execute(_Q["runs_heartbeats"], {"ids": want})
            return loaded_runs(ids, history, await events.fetchall() if want else [],
                               await beats.fetchall() if want else [], await msgs.fetchall())

        return await self._reading(read) if ids else {}

    # -- liveness (see _liveness.py) ---------------------------------------------------

    async def register_worker(
        self, worker_id: str, host: str, pid: int, *, real_now: float, lease: float,
        queues: Sequence[str] | None = None,
    ) -> None:
        """Create this worker's lease row, and hold its liveness lock from now on."""
        await super().register_worker(worker_id, host, pid, real_now=real_now, lease=lease,
                                      queues=queues)
        if self._liveness is not None:
            await self._liveness.hold(worker_id)

    async def expire_disconnected_workers(self) -> int:
        """Expire at once the leases of workers whose database session ended since an
        earlier call: their process died, its kernel closed the connection (see
        ``_liveness``). One cheap read; a write only when someone died."""
        liveness = self._liveness
        if liveness is None:
            return 0
        generation, params = liveness.probe_params()
        try:
            rows = await self._read("worker_sessions", params)
        except StoreError as exc:
            # Never let an optimization stop the worker's loop: the lease still works.
            # (A lost database shows in the loop's next read anyway.)
            log.log(logging.DEBUG if liveness.probe_failed else logging.WARNING,
                    "cannot probe other workers' sessions: %s", exc)
            liveness.probe_failed = True
            return 0
        liveness.probe_failed = False
        dead = await liveness.judge(rows, generation)
        if not dead:
            return 0
        log.info("worker(s) %s lost their database session (process gone, or its "
                 "connection dropped): their runs are taken over now", ", ".join(dead))
        return await self._simple("expire_workers", {"workers": dead}, notify=True)

    async def deregister_worker(self, worker_id: str, *, now: float) -> None:
        """Release this worker's runs and delete its lease row, then its liveness lock."""
        await super().deregister_worker(worker_id, now=now)
        if self._liveness is not None:  # only now: a worker with a row and no lock is dead
            await self._liveness.release(worker_id)

    # -- analytics -----------------------------------------------------------------

    async def stats_catch_up(self) -> int | None:
        """A batch of the stats rollup's catch-up (migration 0017), one transaction on a
        pooled connection (:meth:`StatsReads.stats_catch_up`)."""
        if self.options.read_only:
            return None
        done: int = await self._reading(self._catch_up)
        return done

    async def _catch_up(self, conn: Conn) -> int:
        """Up to :data:`_CATCH_UP_RUNS` pending runs into the stats rollup (the
        ``stats_catch_up_*`` queries, in their order), in one repeatable-read snapshot;
        0 when another catch-up holds the lock or a concurrent purge got in the way (the
        read adds what is pending anyway)."""
        try:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur = await conn.execute(_Q["stats_catch_up_lock"],
                                         {"key": lock_key(f"duro.stats.{self.schema}")})
                row = await cur.fetchone()
                if not row or not row[0]:
                    return 0
                await conn.execute(_Q["stats_catch_up_pick"], {"limit": _CATCH_UP_RUNS})
                for name in ("stats_catch_up_runs_out", "stats_catch_up_runs_in",
                             "stats_catch_up_steps", "stats_catch_up_counted"):
                    await conn.execute(_Q[name])
                cur = await conn.execute(_Q["stats_catch_up_done"])
                return cur.rowcount
        except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
            return 0  # a purge took out what this batch read: the next read catches up

    # -- retention -----------------------------------------------------------------

    async def purge_finished(self, *, before: float, limit: int = 500) -> int | None:
        """Delete up to ``limit`` runs that ended before ``before`` (durable time), with
        their history, in one short transaction on a pooled connection.

        Returns how many were deleted, or None when another worker holds the schema's
        retention lock (one purger at a time).
        """
        if self._pool is None:
            raise StoreError("the store is not open")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(_Q["purge_lock"],
                                         {"key": lock_key(f"duro.purge.{self.schema}")})
                row = await cur.fetchone()
                if not row or not row[0]:
                    return None
                cur = await conn.execute(_Q["purge_doomed"],
                                         {"before": before, "limit": limit})
                row = await cur.fetchone()
                ids: list[str] = list(row[0]) if row else []
                if ids:
                    await conn.execute(_Q["purge_finished"], {"ids": ids})
                return len(ids)
        except PoolTimeout:
            raise StoreError("no database connection available for the retention job") \
                from None
        except psycopg.Error as exc:
            raise _translate(exc) from None


