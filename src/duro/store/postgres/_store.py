"""The PostgreSQL store: many worker processes on many hosts share one database.

Writes go through one connection per store with group commit (see ``_writer``); reads
use a connection pool; claims skip rows other workers are claiming (``FOR UPDATE SKIP
LOCKED``); wake-ups travel by ``LISTEN/NOTIFY`` (see ``_listen``). Each operation is a
small function over a named query of ``queries.sql``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from duro._history import (
    PROJECTED_KINDS,
    TERMINAL_KINDS,
    UPDATE_STATUS,
    EventKind,
    MessageKind,
    UpdateMeta,
)
from duro.errors import (
    DataRejectedError,
    RunNotFoundError,
    StoreError,
    WorkflowAlreadyStartedError,
)
from duro.store._policy import (
    TIMED_OUT,
    child_not_started,
    child_started_event,
    terminated,
    too_deep,
)
from duro.store._protocol import Fenced
from duro.store._records import (
    LIVE_STATUSES,
    TERMINAL_STATUSES,
    Claim,
    EventRecord,
    IdConflictPolicy,
    IdReusePolicy,
    InboxMessage,
    LoadedRun,
    Message,
    NewEvent,
    Placement,
    QueueConfig,
    QueueStats,
    RunLinks,
    RunRecord,
    TaskRecord,
    UpdateOutcome,
    event_records,
    histories_wanted,
    loaded_runs,
)
from duro.store.postgres._arrays import event_columns
from duro.store.postgres._listen import Listener
from duro.store.postgres._liveness import Liveness
from duro.store.postgres._ops import (
    close,
    closing_links,
    create_run,
    event_arrays,
    fetch_run,
    move_inbox,
    on_closed,
    row_to_run,
    send,
)
from duro.store.postgres._schedules import PostgresSchedules
from duro.store.postgres._schema import check_current, migrate
from duro.store.postgres._sql import queries
from duro.store.postgres._url import parse_postgres_url, redact
from duro.store.postgres._writer import (
    Ambiguous,
    Finish,
    Writer,
    connection_lost,
    short_error,
)

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


_run = row_to_run

# Lookups of a workflow id's live run before giving up (see PostgresStore._write_message).
_MOVED_RETRIES = 5


class _Moved(Exception):
    """The live run a message was for ended before the message went in (nothing was
    written): look the workflow id up again."""


def _claim(row: Sequence[Any]) -> Claim:
    return Claim(run_id=row[0], workflow_id=row[1], workflow_name=row[2], epoch=row[3],
                 history_len=row[4], queue=row[5],
                 recoveries=row[6] if len(row) > 6 else 0)


def _done(value: Any = None) -> Finish:
    async def finish() -> Any:
        return value

    return finish


def _queue_config(r: Sequence[Any]) -> QueueConfig:
    return QueueConfig(name=r[0], concurrency=r[1], per_worker=r[2], rate_limit=r[3],
                       rate_period=r[4] or 1.0, key_concurrency=r[5])


async def _claim_limited(conn: Conn, queue: str, params: dict[str, Any], room: int,
                         held_here: int) -> list[Claim]:
    """Claim from one queue with limits, holding the queue's row lock until the commit,
    so that concurrent claimers (other workers) check the limits one at a time: global
    and per-worker concurrency count running runs only (a suspended run holds no slot);
    the rate limit counts first starts in a sliding window; concurrency keys cap running
    runs per key.

    In a rate-limited queue a first start is stamped once, with the database's clock
    read under the lock: that stamp is both the run's ``started_at`` and its entry in
    the rate log. Times the caller took before the claim (its durable ``now`` at the
    top of a worker's loop turn, ``real_now`` a few awaits later, then the wait for the
    lock; each host with its own clock) let two claims a little more than a period
    apart by those times start twice the limit within one real period."""
    cur = conn.cursor()
    await cur.execute(_Q["lock_queue"], {"queue": queue})
    row = await cur.fetchone()
    if row is None:  # deleted meanwhile
        return []
    config = _queue_config(row)
    q = {"queue": queue}
    if config.concurrency is not None:
        cur = await conn.execute(_Q["queue_running"], q)
        running = await cur.fetchone()
        room = min(room, config.concurrency - int(running[0] if running else 0))
    if config.per_worker is not None:
        room = min(room, config.per_worker - held_here)
    if room <= 0:
        return []
    rate_room: int | None = None
    stamp = params["now"]  # the started_at of a first start
    if config.rate_limit is not None:
        cur = await conn.execute(_Q["queue_rate_window"], {**q, "period": config.rate_period})
        window = await cur.fetchone()
        assert window is not None
        stamp, rate_room = float(window[0]), config.rate_limit - int(window[1])
    per_key: dict[str, int] = {}
    if config.key_concurrency is not None:
        cur = await conn.execute(_Q["queue_running_by_key"], q)
        per_key = {k: int(n) for k, n in await cur.fetchall()}
    chosen: list[str] = []
    first_starts: set[str] = set()
    page = room * 4 + 16
    offset = 0
    while len(chosen) < room:
        cur = await conn.execute(_Q["queue_candidates"], {
            **params, **q, "page": page, "offset": offset})
        candidates = await cur.fetchall()
        offset += len(candidates)
        for run_id, key, started_at in candidates:
            if len(chosen) >= room:
                break
            first_start = started_at is None
            if first_start and rate_room is not None and rate_room <= 0:
                continue  # resumes may still go: the rate limit is about starts
            if (key is not None and config.key_concurrency is not None
                    and per_key.get(key, 0) >= config.key_concurrency):
                continue
            chosen.append(run_id)
            if key is not None:
                per_key[key] = per_key.get(key, 0) + 1
            if first_start:
                first_starts.add(run_id)
                if rate_room is not None:
                    rate_room -= 1
        if len(candidates) < page:
            break
    if not chosen:
        return []
    cur = await conn.execute(_Q["claim_ids"], {**params, "now": stamp, "ids": chosen})
    out = [_claim(r) for r in await cur.fetchall()]
    if config.rate_limit is not None:
        n = sum(1 for c in out if c.run_id in first_starts)
        if n:
            await conn.execute(_Q["queue_record_starts"], {**q, "stamp": stamp, "n": n})
    return out


class PostgresStore(PostgresSchedules):
    """A :class:`~duro.store.Store` on PostgreSQL (psycopg 3, async).

    Args:
        url: ``postgresql://user:password@host:port/dbname`` with libpq's query options,
            plus duro's: ``schema`` (default ``duro``), ``migrate`` (default true; false
            leaves migrations to ``duro db migrate``), ``pool_size`` (read connections,
            default 8), ``reconnect_timeout`` (seconds a write waits for a lost database,
            default 60).
    """

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
        self._writer: Writer | None = None
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener: Listener | None = None
        self._liveness: Liveness | None = None

    def __repr__(self) -> str:
        return f"<PostgresStore {redact(self.url)}>"

    # -- connections ---------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        info = psycopg.conninfo.conninfo_to_dict(self.options.conninfo)
        extra = str(info.get("options") or "")
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
        try:
            if self.options.migrate:
                applied = await migrate(conn, self.schema)
                if applied:
                    log.info("applied migrations %s to schema %s", applied, self.schema)
            else:
                await check_current(conn, self.schema)
            await conn.execute(_Q["writer_forget_stale"])
            pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                self.options.conninfo, min_size=1, max_size=self.options.pool_size,
                kwargs={"autocommit": True, **self._connect_kwargs()}, open=False,
                name=f"duro-{self.schema}", timeout=10.0)
            await pool.open(wait=True, timeout=30.0)
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

    async def _write(self, op: Callable[[Conn], Any], *, notify: bool = False,
                     ambiguous: Ambiguous = "fail") -> Any:
        if self._writer is None:
            raise StoreError("the store is not open")
        return await self._writer.submit(op, notify=notify, ambiguous=ambiguous)

    async def _write_message(self, op: Callable[[Conn], Any], **kw: Any) -> Any:
        """:meth:`_write` an operation that sends a message to a workflow id's live run,
        again while it raises :class:`_Moved` (the run it looked up ended, or continued
        as new, before the message went in: another transaction, which this one's
        snapshot could not see coming)."""
        for _ in range(_MOVED_RETRIES):
            try:
                return await self._write(op, **kw)
            except _Moved:
                continue
        raise StoreError("the run kept ending while a message was sent to it; try again")

    async def _read(self, name: str, params: dict[str, Any], *,
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

    # -- runs ----------------------------------------------------------------------

    async def create_run(
        self,
        *,
        run_id: str,
        workflow_id: str,
        workflow_name: str,
        input: bytes,
        now: float,
        owner: str | None,
        on_conflict: IdConflictPolicy,
        on_reuse: IdReusePolicy,
        links: RunLinks | None = None,
        message: Message | None = None,
        placement: Placement | None = None,
    ) -> tuple[RunRecord, bool]:
        async def op(conn: Conn) -> Finish:
            record, created = await create_run(
                conn, run_id=run_id, workflow_id=workflow_id, workflow_name=workflow_name,
                input=input, now=now, owner=owner, on_conflict=on_conflict,
                on_reuse=on_reuse, links=links, placement=placement)
            if message is None:
                return _done((record, created))
            if record.status.value not in LIVE_STATUSES:
                if created:  # cannot happen: a new run is live
                    raise AssertionError(record)
                raise RunNotFoundError(
                    f"workflow id {workflow_id!r} names a run that has ended "
                    f"({record.status.value}); it cannot receive {message.kind}s")
            sent = await send(conn, record.run_id, message, now)

            async def finish() -> tuple[RunRecord, bool]:
                row = await sent.fetchone()
                if row is None:  # the live run ended meanwhile: nothing was written
                    raise _Moved(workflow_id)
                return _run(row), created

            return finish

        async def undo(conn: Conn) -> None:  # created owned, but we could not tell the caller
            await conn.execute(_Q["release_run"], {"run_id": run_id, "epoch": 1, "now": now})

        owned = owner is not None and (placement is None or placement.immediate)
        result: tuple[RunRecord, bool] = await self._write_message(
            op, notify=not owned or message is not None,
            ambiguous=undo if owned else "fail")
        return result

    async def append(
        self,
        run_id: str,
        epoch: int,
        first_seq: int,
        events: Sequence[NewEvent],
        *,
        now: float,
        status: str | None = None,
        result: bytes | None = None,
        error: bytes | None = None,
        wake_at: float | None = None,
        release: bool = False,
        consume_inbox_upto: int | None = None,
    ) -> None:
        simple = status is None and consume_inbox_upto is None
        params: dict[str, Any] = {"run_id": run_id, "epoch": epoch,
                                  "new_len": first_seq + len(events), "now": now,
                                  "first_seq": first_seq}
        if simple and len(events) == 1:
            e = events[0]
            sql = _Q["append_one"]
            params.update(seq=first_seq, kind=e.kind, op=e.op, name=e.name, ts=e.ts,
                          data=e.data, meta=e.meta)
        else:
            sql = _Q["append"] if simple else _Q["append_transition"]
            params.update(event_columns(first_seq, events))
        if not simple:
            params.update(status=status, result=result, error=error, wake_at=wake_at,
                          release=release, terminal=status in TERMINAL_STATUSES,
                          consume=consume_inbox_upto)
        wake = {"run_id": run_id, "now": now, "channel": self.channel, "token": self.token}
        projections = [_projection(run_id, epoch, first_seq + len(events), e)
                       for e in events if e.kind in _PROJECTED] if events else []

        terminal = status in TERMINAL_STATUSES

        async def op(conn: Conn) -> Finish:
            cur = conn.cursor()
            await cur.execute(sql, params)
            links = await closing_links(conn, run_id) if terminal else None
            for name, args in projections:
                if name:
                    await conn.execute(_Q[name], args)
            if status == "suspended":
                # A message that arrived while the run was running must still wake it.
                await conn.execute(_Q["wake_if_inbox"], wake)
            if terminal:
                # The run's end concerns its parent and children: only once the fence
                # passed (else nothing was written: the projections are fenced too).
                row = await cur.fetchone()
                if row is None or row[0] != 1:
                    raise Fenced(run_id)
                assert status is not None
                await on_closed(conn, run_id, status, result, error, now, links)
                return _done()

            async def finish() -> None:
                row = await cur.fetchone()
                if row is None or row[0] != 1:
                    raise Fenced(run_id)

            return finish

        await self._write(op, notify=terminal)

    async def claim(
        self, worker_id: str, names: Sequence[str], limit: int, *, now: float,
        real_now: float, queues: Sequence[str] | None = None,
        local: Mapping[str, int] | None = None, ahead: float = 0.0,
    ) -> list[Claim]:
        if not names or limit <= 0:
            return []
        local = dict(local or {})
        params: dict[str, Any] = {"worker": worker_id, "names": list(names), "now": now,
                                  "real_now": real_now,
                                  "queues": None if queues is None else list(queues)}

        async def op(conn: Conn) -> Finish:
            cur = conn.cursor()
            await cur.execute(_Q["queue_configs"])
            configs = [_queue_config(r) for r in await cur.fetchall()]
            limited = sorted(c.name for c in configs
                             if c.limited or c.per_worker is not None)
            out: list[Claim] = []
            if queues is None or any(q not in limited for q in queues):
                cur = conn.cursor()
                await cur.execute(_Q["claim_open"], {**params, "limited": limited,
                                                     "limit": limit})
                out += [_claim(r) for r in await cur.fetchall()]
            for queue in limited:  # sorted: claimers lock queues in one order
                room = limit - len(out)
                if room <= 0:
                    break
                if queues is None or queue in queues:
                    out += await _claim_limited(conn, queue, params, room,
                                                local.get(queue, 0))
            await conn.execute(_Q["release_dead_tasks"], params)
            room = limit - len(out)
            if room > 0:
                cur = conn.cursor()
                await cur.execute(_Q["take_over"], {**params, "limit": room})
                out += [_claim(r) for r in await cur.fetchall()]
            room = limit - len(out)
            if room > 0 and ahead > 0 and (queues is None
                                           or any(q not in limited for q in queues)):
                cur = conn.cursor()
                await cur.execute(_Q["claim_ahead_open"], {
                    **params, "limited": limited, "limit": room, "until": now + ahead})
                out += [_claim(r) for r in await cur.fetchall()]
            await conn.execute(_Q["delete_dead_idle_workers"], params)
            return _done(out)

        async def undo(conn: Conn) -> None:
            await conn.execute(_Q["unclaim_since"], params)

        claims: list[Claim] = await self._write(op, ambiguous=undo)
        return claims

    # -- steps routed to queues --------------------------------------------------------

    async def enqueue_task(self, task: TaskRecord, *, now: float) -> None:
        """Queue a step attempt for a worker serving its queue (idempotent by task id)."""
        await self._simple("enqueue_task", {
            "task_id": task.task_id, "run_id": task.run_id, "op": task.op,
            "attempt": task.attempt, "step": task.step, "queue": task.queue,
            "args": task.args, "info": task.info, "now": now}, notify=True)

    async def has_tasks(self, queues: Sequence[str] | None, steps: Sequence[str]) -> bool:
        """Whether a task this worker could run is waiting (a cheap read before a claim)."""
        if not steps:
            return False
        rows = await self._read("next_task", {
            "queues": None if queues is None else list(queues), "steps": list(steps)})
        return bool(rows)

    async def claim_tasks(self, worker_id: str, queues: Sequence[str] | None,
                          steps: Sequence[str], limit: int, *, real_now: float
                          ) -> list[TaskRecord]:
        """Take up to ``limit`` waiting tasks of these queues and steps."""
        if not steps or limit <= 0:
            return []
        params = {"worker": worker_id, "real_now": real_now, "limit": limit,
                  "queues": None if queues is None else list(queues), "steps": list(steps)}

        async def op(conn: Conn) -> Finish:
            cur = conn.cursor()
            await cur.execute(_Q["claim_tasks"], params)

            async def finish() -> list[TaskRecord]:
                return [TaskRecord(task_id=r[0], run_id=r[1], op=r[2], attempt=r[3],
                                   step=r[4], queue=r[5], args=r[6], info=r[7])
                        for r in await cur.fetchall()]

            return finish

        tasks: list[TaskRecord] = await self._write(op)
        return tasks

    async def complete_task(self, task: TaskRecord, worker_id: str, data: bytes | None,
                            meta: bytes, *, now: float) -> bool:
        """Mark a task done and send its outcome to the run's inbox, atomically.

        False when the task is no longer this worker's (its lease expired and another
        worker took it): the outcome is then dropped.
        """

        async def op(conn: Conn) -> Finish:
            cur = await conn.execute(_Q["finish_task"], {"now": now, "task_id": task.task_id,
                                                         "worker": worker_id})
            if await cur.fetchone() is None:
                return _done(False)
            await send(conn, task.run_id, Message(kind=MessageKind.TASK_DONE,
                                                  name=str(task.op), data=data, meta=meta),
                       now)
            return _done(True)

        done: bool = await self._write(op, notify=True)
        return done

    async def cancel_task(self, task_id: str) -> None:
        """Drop a task nobody has started (the workflow no longer wants it)."""
        await self._simple("cancel_task", {"task_id": task_id})

    async def upsert_queue(self, config: QueueConfig, *, now: float) -> None:
        """Create or update a queue's limits."""
        await self._simple("upsert_queue", {
            "name": config.name, "concurrency": config.concurrency,
            "per_worker": config.per_worker, "rate_limit": config.rate_limit,
            "rate_period": config.rate_period, "key_concurrency": config.key_concurrency,
            "now": now}, notify=True)

    async def queue_stats(self, *, real_now: float) -> list[QueueStats]:
        """Every queue with runs or limits: depth, running count, limits."""
        configs = {c.name: c for c in map(_queue_config, await self._read("queue_configs", {}))}
        counts: dict[str, dict[str, int]] = {}
        for queue, status, n in await self._read("queue_counts", {}):
            counts.setdefault(queue, {})[status] = int(n)
        out = []
        for name in sorted(set(configs) | set(counts)):
            config = configs.get(name, QueueConfig(name=name))
            started = 0
            if config.rate_limit is not None:
                rows = await self._read("queue_started_lately", {
                    "queue": name, "period": config.rate_period})
                started = int(rows[0][0])
            c = counts.get(name, {})
            out.append(QueueStats(config=config, pending=c.get("pending", 0),
                                  suspended=c.get("suspended", 0),
                                  running=c.get("running", 0), started_last_period=started))
        return out

    async def next_wake_at(self, names: Sequence[str]) -> float | None:
        if not names:
            return None
        rows = await self._read("next_wake_for", {"names": list(names)})
        return rows[0][0] if rows else None

    async def load_history(self, run_id: str) -> list[EventRecord]:
        # Binary results: no hex decoding of each bytea payload (a long history loads
        # ~20% faster); the Python values are the same.
        return event_records(run_id, await self._read("history", {"run_id": run_id},
                                                      binary=True))

    async def load_runs(
        self, run_ids: Sequence[str], *, history: Collection[str] | None = None
    ) -> dict[str, LoadedRun]:
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

    async def get_run(self, workflow_id: str, run_id: str | None = None) -> RunRecord | None:
        if run_id is not None:
            rows = await self._read("run_by_id", {"run_id": run_id}, dicts=True)
        else:
            rows = await self._read("latest_run_by_workflow_id",
                                    {"workflow_id": workflow_id}, dicts=True)
            if not rows:  # accept a run id where a workflow id was expected
                rows = await self._read("run_by_id", {"run_id": workflow_id}, dicts=True)
        return _run(rows[0]) if rows else None

    async def list_runs(
        self, *, status: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        rows = await self._read("list_runs", {"status": status, "name": name, "limit": limit},
                                dicts=True)
        return [_run(r) for r in rows]

    # -- workers and leases ------------------------------------------------------------

    async def _simple(self, name: str, params: dict[str, Any], *, notify: bool = False,
                      ambiguous: Ambiguous = "retry") -> int:
        """One statement; returns its row count."""

        async def op(conn: Conn) -> Finish:
            cur = conn.cursor()
            await cur.execute(_Q[name], params)

            async def finish() -> int:
                return cur.rowcount

            return finish

        count: int = await self._write(op, notify=notify, ambiguous=ambiguous)
        return count

    async def register_worker(
        self, worker_id: str, host: str, pid: int, *, real_now: float, lease: float
    ) -> None:
        """Create this worker's lease row, and hold its liveness lock from now on."""
        await self._simple("register_worker", {"worker": worker_id, "host": host, "pid": pid,
                                               "real_now": real_now,
                                               "lease_until": real_now + lease})
        if self._liveness is not None:
            await self._liveness.hold(worker_id)

    async def renew_worker(self, worker_id: str, *, real_now: float, lease: float) -> bool:
        return await self._simple("renew_worker", {"worker": worker_id,
                                                   "lease_until": real_now + lease}) == 1

    async def worker_pids(self, host: str) -> list[int]:
        return [int(r[0]) for r in await self._read("worker_pids", {"host": host})]

    async def expire_dead_workers(self, host: str, dead_pids: Sequence[int]) -> int:
        if not dead_pids:
            return 0
        return await self._simple("expire_worker_pids", {"host": host, "pids": list(dead_pids)})

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
        params = {"worker": worker_id, "now": now}

        async def op(conn: Conn) -> Finish:
            await conn.execute(_Q["release_owned"], params)
            await conn.execute(_Q["release_tasks_of"], params)
            await conn.execute(_Q["delete_worker"], params)
            return _done()

        await self._write(op, notify=True, ambiguous="retry")
        if self._liveness is not None:  # only now: a worker with a row and no lock is dead
            await self._liveness.release(worker_id)

    async def release(self, run_id: str, epoch: int, *, now: float) -> None:
        await self._simple("release_run", {"run_id": run_id, "epoch": epoch, "now": now},
                           notify=True)

    async def mark_trial(self, run_id: str, epoch: int) -> None:
        await self._simple("mark_trial", {"run_id": run_id, "epoch": epoch})

    async def park(
        self, run_id: str, epoch: int, *, error: bytes, code_hash: str, now: float
    ) -> None:
        await self._simple("park_run", {"run_id": run_id, "epoch": epoch, "error": error,
                                        "code_hash": code_hash, "now": now})

    async def unpark(self, name: str, code_hash: str, *, now: float) -> int:
        return await self._simple("unpark", {"name": name, "code_hash": code_hash, "now": now},
                                  notify=True)

    async def resume_parked(self, workflow_id: str, *, now: float) -> RunRecord:
        async def op(conn: Conn) -> Finish:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_Q["live_run_by_workflow_id"], {"workflow_id": workflow_id})
            row = await cur.fetchone()
            if row is None or row["status"] != "parked":
                raise RunNotFoundError(f"no parked run with workflow id {workflow_id!r}")
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_Q["resume_parked"], {"run_id": row["run_id"], "now": now})

            async def finish() -> RunRecord:
                got = await cur.fetchone()
                if got is None:
                    raise RunNotFoundError(f"no parked run with workflow id {workflow_id!r}")
                return _run(got)

            return finish

        record: RunRecord = await self._write(op, notify=True)
        return record

    # -- messages ------------------------------------------------------------------

    async def _live_run_id(self, conn: Conn, workflow_id: str) -> str:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_Q["live_run_by_workflow_id"], {"workflow_id": workflow_id})
        row = await cur.fetchone()
        if row is None:
            await cur.execute(_Q["run_by_id"], {"run_id": workflow_id})
            row = await cur.fetchone()
            if row is None or row["status"] not in LIVE_STATUSES:
                raise RunNotFoundError(f"no live run with workflow id {workflow_id!r}")
        return str(row["run_id"])

    async def send_message(
        self, workflow_id: str, kind: str, name: str | None, data: bytes | None, *, now: float
    ) -> RunRecord:
        async def op(conn: Conn) -> Finish:
            run_id = await self._live_run_id(conn, workflow_id)
            cur = await send(conn, run_id, Message(kind=kind, name=name, data=data), now)

            async def finish() -> RunRecord:
                row = await cur.fetchone()
                if row is None:  # it ended between the lookup and the insert
                    raise _Moved(workflow_id)
                return _run(row)

            return finish

        record: RunRecord = await self._write_message(op, notify=True)
        return record

    async def read_inbox(self, run_id: str) -> list[InboxMessage]:
        return [InboxMessage(id=r[0], kind=r[1], name=r[2], data=r[3], meta=r[4])
                for r in await self._read("read_inbox", {"run_id": run_id})]

    async def owned_runs(self, worker_id: str) -> list[tuple[str, int]]:
        return [(r[0], int(r[1])) for r in await self._read("owned_runs",
                                                            {"worker": worker_id})]

    async def runs_with_inbox(self, worker_id: str) -> list[str]:
        return [r[0] for r in await self._read("runs_with_inbox", {"worker": worker_id})]

    async def terminate(self, workflow_id: str, *, reason: str, now: float) -> RunRecord:
        error = terminated(reason)

        async def op(conn: Conn) -> Finish:
            run_id = await self._live_run_id(conn, workflow_id)
            record = await close(conn, run_id, "terminated", error, now)
            if record is None:
                raise RunNotFoundError(f"no live run with workflow id {workflow_id!r}")
            return _done(record)

        record: RunRecord = await self._write(op, notify=True)
        return record

    async def time_out(self, run_id: str, epoch: int, *, now: float) -> bool:
        """Close a run whose execution timeout passed; False if it moved on meanwhile."""
        error = TIMED_OUT

        async def op(conn: Conn) -> Finish:
            record = await close(conn, run_id, "timed_out", error, now,
                                 epoch=epoch)
            return _done(record is not None)

        done: bool = await self._write(op, notify=True)
        return done

    # -- children, continue-as-new, reset ---------------------------------------------

    async def _fence(self, conn: Conn, run_id: str, epoch: int, first_seq: int,
                     events: Sequence[NewEvent], new_len: int, now: float) -> None:
        """Append ``events`` and set the history length, fenced (raises :class:`Fenced`,
        having written nothing, when the epoch is stale); projects their side effects."""
        cur = await conn.execute(_Q["append"], {
            **event_arrays(run_id, first_seq, events), "epoch": epoch, "new_len": new_len,
            "first_seq": first_seq, "now": now})
        row = await cur.fetchone()
        if row is None or row[0] != 1:
            raise Fenced(run_id)
        for e in events:
            if e.kind in _PROJECTED:
                name, args = _projection(run_id, epoch, new_len, e)
                if name:
                    await conn.execute(_Q[name], args)

    async def start_child(
        self, parent_run_id: str, epoch: int, seq: int, before: Sequence[NewEvent], *,
        op: int, run_id: str, workflow_id: str, workflow_name: str, input: bytes,
        links: RunLinks, owner: str | None, now: float, placement: Placement | None = None,
        max_depth: int | None = None,
    ) -> tuple[RunRecord | None, NewEvent]:
        """Start a child and record it in the parent, atomically.

        ``before`` (the parent's pending events) are appended first; then either
        ``child_started`` (and the child exists, one level deeper than its parent) or
        ``child_failed`` — at the same sequence number either way — when the child's
        workflow id is taken by a live run, it would be nested deeper than ``max_depth``,
        or the database refuses it (a workflow id too long to index, say).
        """
        at = seq + len(before)

        async def op_(conn: Conn) -> Finish:
            await self._fence(conn, parent_run_id, epoch, seq, before, at + 1, now)
            cur = await conn.execute(_Q["run_depth"], {"run_id": parent_run_id})
            row = await cur.fetchone()
            depth = (int(row[0]) if row else 0) + 1
            record: RunRecord | None = None
            event = too_deep(depth, max_depth, op, workflow_id, workflow_name, now)
            if event is None:
                try:
                    record, _ = await create_run(
                        conn, run_id=run_id, workflow_id=workflow_id,
                        workflow_name=workflow_name, input=input, now=now, owner=owner,
                        on_conflict="fail", on_reuse="allow",
                        links=dataclasses.replace(links, depth=depth), placement=placement)
                    event = child_started_event(op, workflow_name, workflow_id, run_id, now)
                except WorkflowAlreadyStartedError as exc:  # raised before writing the child
                    event = child_not_started(op, workflow_name, exc, str(exc), now)
            await conn.execute(_Q["insert_events"], event_arrays(parent_run_id, at, [event]))
            return _done((record, event))

        try:
            result: tuple[RunRecord | None, NewEvent] = await self._write(op_, notify=True)
        except DataRejectedError as exc:
            # Recorded, not raised: the parent would replay and try again forever.
            event = child_not_started(op, workflow_name, exc, str(exc), now)

            async def refused(conn: Conn) -> Finish:
                await self._fence(conn, parent_run_id, epoch, seq, before, at + 1, now)
                await conn.execute(_Q["insert_events"],
                                   event_arrays(parent_run_id, at, [event]))
                return _done((None, event))

            result = await self._write(refused)
        return result

    async def continue_as_new(
        self, run_id: str, epoch: int, seq: int, events: Sequence[NewEvent], *,
        new_run_id: str, input: bytes, owner: str | None, now: float,
        carry: Sequence[Message] = (),
    ) -> RunRecord:
        """Close a run as continued-as-new and start its successor, atomically.

        The successor keeps the workflow id, queue, priority, concurrency key, parent,
        deadline and published state, and gets the messages ``carry`` and the old run's
        inbox (see :meth:`duro.store.Store.continue_as_new`).
        """
        new_len = seq + len(events)

        async def op(conn: Conn) -> Finish:
            cur = await conn.execute(_Q["append_transition"], {
                **event_arrays(run_id, seq, events), "epoch": epoch, "new_len": new_len,
                "first_seq": seq, "now": now, "status": "continued_as_new", "result": None,
                "error": None, "wake_at": None, "release": True, "terminal": True,
                "consume": None})
            row = await cur.fetchone()
            if row is None or row[0] != 1:
                raise Fenced(run_id)
            for e in events:
                if e.kind in _PROJECTED:  # e.g. state published just before
                    name, args = _projection(run_id, epoch, new_len, e)
                    if name:
                        await conn.execute(_Q[name], args)
            old = await fetch_run(conn, run_id)
            assert old is not None
            links = RunLinks(parent_run_id=old.parent_run_id, parent_op=old.parent_op,
                             parent_close=old.parent_close, deadline_at=old.deadline_at,
                             origin_run_id=run_id, depth=old.depth)
            record, _ = await create_run(
                conn, run_id=new_run_id, workflow_id=old.workflow_id,
                workflow_name=old.workflow_name, input=input, now=now, owner=owner,
                on_conflict="fail", on_reuse="allow", links=links,
                placement=Placement(queue=old.queue, priority=old.priority,
                                    concurrency_key=old.concurrency_key))
            await conn.execute(_Q["copy_state"], {"new_run_id": new_run_id, "run_id": run_id})
            await move_inbox(conn, run_id, new_run_id, carry, now)
            return _done(record)

        record: RunRecord = await self._write(op, notify=owner is None)
        return record

    async def copy_run(
        self, source_run_id: str, *, upto_seq: int, drop_ops: Sequence[int], new_run_id: str,
        workflow_id: str, close_source: bool, reason: str, now: float,
    ) -> RunRecord:
        """Start a new run whose history is a prefix of another's (reset, retry, fork).

        Events ``[0, upto_seq)`` are copied, except outcomes of ``drop_ops`` and run
        ends; with ``close_source`` a live source run is terminated in the same
        transaction (same workflow id: at most one live run).
        """
        dropped = set(drop_ops)
        error = terminated(reason)

        async def op(conn: Conn) -> Finish:
            # Everything that can fail is checked before anything is written.
            source = await fetch_run(conn, source_run_id)
            if source is None:
                raise RunNotFoundError(f"no run {source_run_id!r}")
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_Q["history_prefix"], {"run_id": source_run_id,
                                                     "upto": upto_seq})
            events = [r for r in await cur.fetchall()
                      if not (r["op"] in dropped and r["kind"] != EventKind.RUN_STARTED)
                      and r["kind"] not in TERMINAL_KINDS]
            if not events or events[0]["kind"] != EventKind.RUN_STARTED:
                raise StoreError("a copied history must start with run_started")
            closing = close_source and source.status.value in LIVE_STATUSES
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_Q["live_run_by_workflow_id"], {"workflow_id": workflow_id})
            live = await cur.fetchone()
            if live is not None and not (closing and live["run_id"] == source_run_id):
                raise WorkflowAlreadyStartedError(
                    f"workflow id {workflow_id!r} already has a live run "
                    f"({live['run_id']}, {live['status']})",
                    workflow_id=workflow_id, run_id=live["run_id"])
            if closing:
                await close(conn, source_run_id, "terminated", error, now)
            await create_run(
                conn, run_id=new_run_id, workflow_id=workflow_id,
                workflow_name=source.workflow_name, input=events[0]["data"], now=now,
                owner=None, on_conflict="fail", on_reuse="allow",
                links=RunLinks(origin_run_id=source_run_id), started_event=False,
                placement=Placement(queue=source.queue, priority=source.priority,
                                    concurrency_key=source.concurrency_key))
            copied = [NewEvent(kind=e["kind"], ts=e["ts"], op=e["op"], name=e["name"],
                               data=e["data"], meta=e["meta"]) for e in events]
            await conn.execute(_Q["insert_events"], event_arrays(new_run_id, 0, copied))
            await conn.execute(_Q["set_history_len"], {"len": len(events),
                                                       "run_id": new_run_id})
            for e in events:
                if e["kind"] == EventKind.STATE_SET:
                    await conn.execute(_Q["put_state"], {"run_id": new_run_id,
                                                         "key": e["name"],
                                                         "value": e["data"], "ts": e["ts"]})
            record = await fetch_run(conn, new_run_id)
            assert record is not None
            return _done(record)

        record: RunRecord = await self._write(op, notify=True)
        return record

    async def children(self, run_id: str) -> list[RunRecord]:
        return [_run(r) for r in await self._read("children_of", {"run_id": run_id},
                                                  dicts=True)]

    # -- state and updates -----------------------------------------------------------

    async def get_state(self, run_id: str, key: str) -> bytes | None:
        rows = await self._read("get_state", {"run_id": run_id, "key": key})
        return rows[0][0] if rows else None

    async def request_update(
        self, workflow_id: str, message: Message, *, now: float
    ) -> tuple[RunRecord, UpdateOutcome]:
        """Queue an update for a live run, or return the outcome of the same update id."""

        async def op(conn: Conn) -> Finish:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_Q["live_run_by_workflow_id"], {"workflow_id": workflow_id})
            row = await cur.fetchone()
            if row is None:
                await cur.execute(_Q["latest_run_by_workflow_id"],
                                  {"workflow_id": workflow_id})
                row = await cur.fetchone()
                if row is None:
                    raise RunNotFoundError(f"no run with workflow id {workflow_id!r}")
            record = _run(row)
            # The same id again: its outcome, in whichever run of the chain has it (an
            # earlier one, if the run continued as new since).
            got = await conn.execute(_Q["find_update"], {"workflow_id": workflow_id,
                                                         "update_id": message.update_id})
            existing = await got.fetchone()
            if existing is not None:
                if existing[0] != record.run_id:
                    holder = await fetch_run(conn, existing[0])
                    record = holder if holder is not None else record
                return _done((record, UpdateOutcome(status=existing[1], result=existing[2],
                                                    error=existing[3])))
            if record.status.value not in LIVE_STATUSES:
                raise RunNotFoundError(f"no live run with workflow id {workflow_id!r}")
            sent = await send(conn, record.run_id, message, now)

            async def finish() -> tuple[RunRecord, UpdateOutcome]:
                if await sent.fetchone() is None:  # it ended between lookup and insert
                    raise _Moved(workflow_id)
                return record, UpdateOutcome(status="requested")

            return finish

        result: tuple[RunRecord, UpdateOutcome] = await self._write_message(op, notify=True)
        return result

    async def get_update(self, run_id: str, update_id: str) -> UpdateOutcome | None:
        rows = await self._read("get_update", {"run_id": run_id, "update_id": update_id})
        if not rows:
            return None
        return UpdateOutcome(status=rows[0][0], result=rows[0][1], error=rows[0][2])

    async def find_update(self, workflow_id: str,
                          update_id: str) -> tuple[str, UpdateOutcome] | None:
        rows = await self._read("find_update", {"workflow_id": workflow_id,
                                                "update_id": update_id})
        if not rows:
            return None
        r = rows[0]
        return r[0], UpdateOutcome(status=r[1], result=r[2], error=r[3])

    async def reject_update(
        self, run_id: str, update_id: str, message_id: int, *, error: bytes, now: float
    ) -> None:
        """Record a rejected update outside the history and drop its message."""
        await self._simple("reject_update", {"run_id": run_id, "update_id": update_id,
                                             "message_id": message_id, "error": error,
                                             "now": now})

    # -- heartbeats ----------------------------------------------------------------

    async def save_heartbeat(self, run_id: str, op: int, details: bytes, *, now: float) -> None:
        await self._simple("save_heartbeat", {"run_id": run_id, "op": op, "details": details,
                                              "now": now})

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
                                         {"key": _lock_key(f"duro.purge.{self.schema}")})
                row = await cur.fetchone()
                if not row or not row[0]:
                    return None
                cur = await conn.execute(_Q["purge_finished"],
                                         {"before": before, "limit": limit})
                row = await cur.fetchone()
                return int(row[0]) if row else 0
        except PoolTimeout:
            raise StoreError("no database connection available for the retention job") \
                from None
        except psycopg.Error as exc:
            raise _translate(exc) from None


_PROJECTED = PROJECTED_KINDS


def _projection(run_id: str, epoch: int, new_len: int,
                event: NewEvent) -> tuple[str, dict[str, Any]]:
    """The read-model write that goes with an event (published state, update outcome);
    its statement only applies if the append's fence passed."""
    fence = {"run_id": run_id, "epoch": epoch, "new_len": new_len, "ts": event.ts}
    if event.kind == EventKind.STATE_SET:
        return "upsert_state", {**fence, "key": event.name, "value": event.data}
    update_id = UpdateMeta.update_id_of(event.meta)
    if update_id is None:
        return "", {}
    status = UPDATE_STATUS[event.kind]
    return "set_update", {
        **fence, "update_id": update_id, "status": status,
        "result": event.data if event.kind == EventKind.UPDATE_COMPLETED else None,
        "error": event.data if event.kind == EventKind.UPDATE_FAILED else None}


def _lock_key(text: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``text``."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big",
                          signed=True)
