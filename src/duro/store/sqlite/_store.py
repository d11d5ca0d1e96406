"""The SQLite store: WAL, ``synchronous=FULL`` by default, one writer thread with group
commit, and a reader connection for the caller's thread."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlparse

import orjson

from duro._history import (
    TERMINAL_KINDS,
    EventKind,
    MessageKind,
)
from duro.errors import (
    DatabaseLockedError,
    DatabaseReadOnlyError,
    DataRejectedError,
    InvalidStoreURLError,
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
from duro.store._url import redact
from duro.store.sqlite._file import FileWatch
from duro.store.sqlite._ops import (
    SIDE_EFFECT_KINDS,
    close,
    create_run,
    live_run_id,
    move_inbox,
    on_closed,
    project,
    row_to_run,
    send,
)
from duro.store.sqlite._schedules import SqliteSchedules
from duro.store.sqlite._sql import migrations, queries
from duro.store.sqlite._wal import presize_wal
from duro.store.sqlite._writer import Writer

__all__ = ["SqliteStore", "parse_sqlite_url"]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
_Q = queries()


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a bare path → (path, options)."""
    if "://" not in url:
        return url, {}
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise InvalidStoreURLError(f"not a SQLite URL: {redact(url)!r}")
    path = unquote(parsed.path)
    if path.startswith("/") and not parsed.netloc:
        path = path[1:]  # sqlite:///x.db is relative, sqlite:////x.db absolute
    if parsed.netloc:
        path = parsed.netloc + path
    if not path:
        raise InvalidStoreURLError(f"SQLite URL without a path: {url!r}")
    options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    return path, options


def _create_private(path: str) -> None:
    """Create the database file readable and writable by its owner only, unless it
    exists. SQLite would create it under the umask (usually world-readable), and gives
    the -wal and -shm files the database file's mode: so all three hold every run's
    arguments, results and errors for the owner's eyes only. An existing file keeps the
    mode its owner gave it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create the database file {path}: {exc.strerror}") from None


def _busy_timeout(option: str | None, default: float) -> float:
    """Seconds to wait for another process's write lock: ``?busy_timeout=`` (in
    milliseconds, as SQLite's pragma) or the default."""
    if option is None:
        return default
    try:
        millis = float(option)
    except ValueError:
        millis = math.nan
    if not 0 <= millis < math.inf:
        raise InvalidStoreURLError(f"URL option busy_timeout={option!r}: expected "
                                   "milliseconds (a number of zero or more)")
    return millis / 1000


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, (Fenced, StoreError, WorkflowAlreadyStartedError, RunNotFoundError)):
        return exc
    if isinstance(exc, sqlite3.OperationalError):
        msg = str(exc)
        if "locked" in msg or "busy" in msg:
            return DatabaseLockedError(
                f"the database is locked by another process and stayed locked past the busy "
                f"timeout ({msg})"
            )
        if "readonly" in msg or "read-only" in msg:
            return DatabaseReadOnlyError(
                f"the database is read-only: duro needs write access to the file and its "
                f"directory (for the -wal and -shm files) ({msg})"
            )
        if "unable to open" in msg:
            return StoreError(f"cannot open the database file ({msg})")
    if isinstance(exc, sqlite3.DataError | sqlite3.IntegrityError):
        return DataRejectedError(f"the database refused a value ({exc})")
    if isinstance(exc, sqlite3.DatabaseError):
        return StoreError(f"database error: {exc}")
    return exc


def _queue_configs(conn: sqlite3.Connection) -> list[QueueConfig]:
    return [QueueConfig(name=r[0], concurrency=r[1], per_worker=r[2], rate_limit=r[3],
                        rate_period=r[4] or 1.0, key_concurrency=r[5])
            for r in conn.execute(_Q["queue_configs"])]


def _queue_filter(queues: Sequence[str] | None) -> tuple[str, list[str]]:
    if queues is None:
        return "1", []
    if not queues:
        return "0", []
    return f"queue IN ({','.join('?' * len(queues))})", list(queues)


def _claims(rows: Sequence[sqlite3.Row]) -> list[Claim]:
    return [Claim(run_id=r[0], workflow_id=r[1], workflow_name=r[2], epoch=r[3],
                  history_len=r[4], queue=r[5]) for r in rows]


def _claim_open(
    conn: sqlite3.Connection, worker_id: str, names: Sequence[str], marks: str, limit: int,
    now: float, real_now: float, queues: Sequence[str] | None, limited: list[str],
    until: float | None = None,
) -> list[Claim]:
    """Claim from queues without limits: one statement, best first (or, with ``until``,
    suspended runs due by then, earliest first)."""
    params: list[Any] = []
    if queues is not None:
        open_queues = [q for q in queues if q not in limited]
        if not open_queues:
            return []
        where = f"queue IN ({','.join('?' * len(open_queues))})"
        params = open_queues
    elif limited:
        where = f"queue NOT IN ({','.join('?' * len(limited))})"
        params = limited
    else:
        where = "1"
    if until is not None:
        sql = _Q["claim_ahead_open"].replace("{names}", marks).replace("{queues}", where)
        rows = conn.execute(sql, (worker_id, real_now, until, *names, *params, limit))
        return _claims(rows.fetchall())
    sql = _Q["claim_ready_open"].replace("{names}", marks).replace("{queues}", where)
    rows = conn.execute(sql, (worker_id, real_now, now, now, *names, *params, limit))
    return _claims(rows.fetchall())


def _claim_limited(
    conn: sqlite3.Connection, config: QueueConfig, worker_id: str, names: Sequence[str],
    marks: str, room: int, now: float, real_now: float, held_here: int,
) -> list[Claim]:
    """Claim from one queue with limits, checked in this (serialized) write transaction:
    global and per-worker concurrency count running runs only (a suspended run holds no
    slot); the rate limit counts first starts in a sliding window; concurrency keys cap
    running runs per key.

    In a rate-limited queue a first start is stamped once, here, under the write lock:
    that stamp is both the run's ``started_at`` and its entry in the rate log. Times the
    caller took before the claim (``now`` at the top of a worker's loop turn,
    ``real_now`` a few awaits later, then maybe a wait for another process's lock) would
    let two claims a little more than a period apart by those times start twice the
    limit within one real period."""
    queue = config.name
    if config.concurrency is not None:
        running = conn.execute(_Q["queue_running"], (queue,)).fetchone()[0]
        room = min(room, config.concurrency - running)
    if config.per_worker is not None:
        room = min(room, config.per_worker - held_here)
    if room <= 0:
        return []
    rate_room: int | None = None
    stamp = now  # the started_at of a first start
    if config.rate_limit is not None:
        stamp = time.time()
        window_start = stamp - config.rate_period
        conn.execute(_Q["queue_forget_starts"], (queue, window_start))
        started = conn.execute(_Q["queue_started_since"], (queue, window_start)).fetchone()[0]
        rate_room = config.rate_limit - started
    per_key: dict[str, int] = {}
    if config.key_concurrency is not None:
        per_key = dict(conn.execute(_Q["queue_running_by_key"], (queue,)).fetchall())
    sql = _Q["queue_candidates"].replace("{names}", marks)
    out: list[Claim] = []
    page = room * 4 + 16
    offset = 0
    while len(out) < room:
        candidates = conn.execute(sql, (queue, now, *names, page, offset)).fetchall()
        offset += len(candidates)
        for run_id, key, started_at in candidates:
            if len(out) >= room:
                break
            first_start = started_at is None
            if first_start and rate_room is not None and rate_room <= 0:
                continue  # resumes may still go: the rate limit is about starts
            if (key is not None and config.key_concurrency is not None
                    and per_key.get(key, 0) >= config.key_concurrency):
                continue
            row = conn.execute(_Q["claim_one"], (worker_id, real_now, stamp, run_id)).fetchone()
            if row is None:
                continue
            out += _claims([row])
            if key is not None:
                per_key[key] = per_key.get(key, 0) + 1
            if first_start and rate_room is not None:
                rate_room -= 1
                conn.execute(_Q["queue_record_start"], (queue, stamp))
        if len(candidates) < page:
            break
    return out


def _take_over(conn: sqlite3.Connection, worker_id: str, names: set[str], room: int,
               real_now: float) -> list[Claim]:
    """Claim the runs of workers whose lease expired."""
    out: list[Claim] = []
    for (dead,) in conn.execute(_Q["expired_workers"], (real_now,)).fetchall():
        if dead == worker_id:
            continue
        for r in conn.execute(_Q["take_over"], (worker_id, real_now, dead, room)).fetchall():
            if r[2] in names:
                out.append(Claim(run_id=r[0], workflow_id=r[1], workflow_name=r[2],
                                 epoch=r[3], history_len=r[4], queue=r[5],
                                 recoveries=r[6]))
            else:  # not ours to run: hand it back for a worker that has the code
                conn.execute(_Q["release_run"], (real_now, real_now, r[0], r[3]))
        room = max(0, room - len(out))
        conn.execute(_Q["release_tasks_of"], (real_now, dead))
        conn.execute(_Q["delete_worker_if_idle"], (dead, dead))
        if room <= 0:
            break
    return out


def _append_before(conn: sqlite3.Connection, run_id: str, epoch: int, seq: int,
                   events: Sequence[NewEvent], now: float) -> int:
    """Fence a run for ``events`` and one more event, append ``events`` (projecting
    their side effects), and return the sequence number of that one more event."""
    at = seq + len(events)
    if conn.execute(_Q["fence_append"], (at + 1, now, run_id, epoch, seq)).rowcount != 1:
        raise Fenced(run_id)
    conn.executemany(_Q["insert_event"], [
        (run_id, seq + i, e.kind, e.op, e.name, e.ts, e.data, e.meta)
        for i, e in enumerate(events)])
    for e in events:
        if e.kind in SIDE_EFFECT_KINDS:
            project(conn, run_id, e)  # e.g. state published just before
    return at


def _insert_event(conn: sqlite3.Connection, run_id: str, seq: int, e: NewEvent) -> None:
    conn.execute(_Q["insert_event"], (run_id, seq, e.kind, e.op, e.name, e.ts, e.data,
                                      e.meta))




class SqliteStore(SqliteSchedules):
    """A :class:`~duro.store.Store` on one SQLite file.

    Args:
        url: ``sqlite:///path`` or a bare path. Query options ``synchronous`` and
            ``busy_timeout`` (ms) are honoured.
        synchronous: SQLite's ``synchronous`` pragma; ``FULL`` (default) survives power
            loss, ``NORMAL`` may lose the last commits on power loss (not on a crash).
        busy_timeout: How long (seconds) to wait for another process's write lock.
        inline_commits: Let a write commit on the event loop's thread when the writer
            thread is idle and nothing else is ready to run (saves two thread hand-offs
            per lone write; see ``_writer.py``). Also ``?inline_commits=false``.
    """

    def __init__(
        self, url: str, *, synchronous: Synchronous | None = None, busy_timeout: float = 10.0,
        inline_commits: bool | None = None,
    ) -> None:
        self.url = url
        path, options = parse_sqlite_url(url)
        self.path = path
        sync = (synchronous or options.get("synchronous") or "FULL").upper()
        if sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {sync!r}")
        self.synchronous = sync
        self.busy_timeout = _busy_timeout(options.get("busy_timeout"), busy_timeout)
        if inline_commits is None:
            flag = str(options.get("inline_commits", "true")).lower()
            inline_commits = flag not in ("0", "false", "no", "off")
        self.inline_commits = inline_commits
        self._writer: Writer | None = None
        self._file: FileWatch | None = None
        self._local = threading.local()
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SqliteStore {self.path}>"

    # -- connections ---------------------------------------------------------------

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        if self.path != ":memory:":
            folder = Path(self.path).resolve().parent
            if not folder.is_dir():
                raise StoreError(f"the directory of the database does not exist: {folder}")
            _create_private(self.path)
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self.busy_timeout,
            cached_statements=256,
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        if writer:
            mode = self._enable_wal(conn)
            if mode.lower() != "wal" and self.path != ":memory:":
                raise StoreError(f"could not put the database in WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = OFF")
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> str:
        # Switching a new file to WAL while another process opens it fails with
        # SQLITE_BUSY at once (SQLite does not run the busy handler there), so retry
        # within the busy timeout.
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _reader(self) -> sqlite3.Connection:
        if self._writer is not None and self._writer.failure is not None:
            raise self._writer.failure  # e.g. the file is gone: what we read is stale
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect(writer=False)
            except sqlite3.Error as exc:
                raise _translate(exc) from None
            self._local.conn = conn
            with self._open_lock:
                self._readers.append(conn)
        return conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc) from None

    def _read_tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """As :meth:`_read`, in plain tuples: a ``sqlite3.Row`` per row costs more, which
        shows on long histories."""
        try:
            cur = self._reader().cursor()
            cur.row_factory = None
            rows: list[tuple[Any, ...]] = cur.execute(sql, params).fetchall()
            return rows
        except sqlite3.Error as exc:
            raise _translate(exc) from None

    async def _write(self, op: Any) -> Any:
        if self._writer is None:
            raise StoreError("the store is not open")
        if self.inline_commits:
            done, value = self._writer.try_inline(op)
            if done:
                return value
        return await self._writer.submit(op)

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Open the file (creating it), migrate, and start the writer thread."""
        self._readers: list[sqlite3.Connection] = []

        def connect() -> sqlite3.Connection:
            try:
                conn = self._connect(writer=True)
                self._migrate(conn)
                if self.path != ":memory:":
                    presize_wal(conn)
                    self._file = FileWatch(self.path)
            except sqlite3.Error as exc:
                err = _translate(exc)
                if "unable to open" in str(exc):
                    err = StoreError(
                        f"cannot open the database {self.path!r}: the file and its directory "
                        f"must exist (or be creatable) and be writable, because SQLite "
                        f"creates {self.path}-wal and -shm beside it ({exc})"
                    )
                raise err from None
            return conn

        self._writer = Writer(connect, _translate, guard=self._check_file)
        await asyncio.to_thread(self._writer.start)

    def _check_file(self) -> None:
        """After each commit: the file written is still the one at our path."""
        if self._file is not None:
            self._file.check()

    async def close(self) -> None:
        """Drain the writer and close every connection."""
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
            self._writer = None
        with self._open_lock:
            for conn in getattr(self, "_readers", []):
                conn.close()
            self._readers = []
        self._local = threading.local()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """SQLite has no cross-process notifications: workers poll (cheap indexed reads)."""
        return lambda: None

    @property
    def write_stats(self) -> tuple[int, int]:
        """(transactions, operations) committed so far: ops/transactions is the batching."""
        return (self._writer.batches, self._writer.ops) if self._writer else (0, 0)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS duro_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM duro_migrations")}
            for version, name, sql in migrations():
                if version in done:
                    continue
                for statement in _split_statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO duro_migrations VALUES (?, ?, strftime('%s','now'))",
                    (version, name),
                )
            known = max((v for v, _, _ in migrations()), default=0)
            if done and max(done) > known:
                raise StoreError(
                    f"the database schema (version {max(done)}) is newer than this duro "
                    f"(version {known}); upgrade duro"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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
        def op(conn: sqlite3.Connection) -> tuple[RunRecord, bool]:
            record, created = create_run(
                conn, run_id=run_id, workflow_id=workflow_id, workflow_name=workflow_name,
                input=input, now=now, owner=owner, on_conflict=on_conflict,
                on_reuse=on_reuse, links=links, placement=placement)
            if message is not None:
                if record.status.value not in LIVE_STATUSES:
                    raise RunNotFoundError(
                        f"workflow id {workflow_id!r} names a run that has ended "
                        f"({record.status.value}); it cannot receive {message.kind}s")
                send(conn, record.run_id, message, now)
            return record, created

        result: tuple[RunRecord, bool] = await self._write(op)
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
        new_len = first_seq + len(events)
        rows = [
            (run_id, first_seq + i, e.kind, e.op, e.name, e.ts, e.data, e.meta)
            for i, e in enumerate(events)
        ]
        closed_at = now if status in TERMINAL_STATUSES else None
        fence_args: tuple[Any, ...]
        if status is None:
            fence_sql = _Q["fence_append"]
            fence_args = (new_len, now, run_id, epoch, first_seq)
        else:
            fence_sql = _Q["fence_transition"]
            fence_args = (new_len, now, status, result, error, wake_at, release, closed_at,
                          run_id, epoch, first_seq)

        side = [e for e in events if e.kind in SIDE_EFFECT_KINDS]

        def op(conn: sqlite3.Connection) -> None:
            if conn.execute(fence_sql, fence_args).rowcount != 1:
                raise Fenced(run_id)
            if len(rows) == 1:
                conn.execute(_Q["insert_event"], rows[0])
            elif rows:
                conn.executemany(_Q["insert_event"], rows)
            if consume_inbox_upto is not None:
                conn.execute(_Q["consume_inbox"], (run_id, consume_inbox_upto))
            for e in side:
                project(conn, run_id, e)
            if status == "suspended":
                # A message that arrived while the run was running must still wake it.
                conn.execute(_Q["wake_if_inbox"], (now, now, run_id, run_id))
            if status in TERMINAL_STATUSES:
                conn.execute(_Q["delete_heartbeats"], (run_id,))
                on_closed(conn, run_id, status, result, error, now)

        await self._write(op)

    async def claim(
        self, worker_id: str, names: Sequence[str], limit: int, *, now: float,
        real_now: float, queues: Sequence[str] | None = None,
        local: Mapping[str, int] | None = None, ahead: float = 0.0,
    ) -> list[Claim]:
        if not names or limit <= 0:
            return []
        marks = ",".join("?" * len(names))
        name_set = set(names)
        local = dict(local or {})

        def op(conn: sqlite3.Connection) -> list[Claim]:
            limited = {c.name: c for c in _queue_configs(conn)
                       if c.limited or c.per_worker is not None}
            served = [q for q in limited if queues is None or q in queues]
            out = _claim_open(conn, worker_id, names, marks, limit, now, real_now, queues,
                              list(limited))
            for queue in served:
                room = limit - len(out)
                if room <= 0:
                    break
                out += _claim_limited(conn, limited[queue], worker_id, names, marks, room,
                                      now, real_now, local.get(queue, 0))
            room = limit - len(out)
            if room > 0:
                out += _take_over(conn, worker_id, name_set, room, real_now)
            room = limit - len(out)
            if room > 0 and ahead > 0:
                out += _claim_open(conn, worker_id, names, marks, room, now, real_now,
                                   queues, list(limited), until=now + ahead)
            return out

        claims: list[Claim] = await self._write(op)
        return claims

    # -- steps routed to queues --------------------------------------------------------

    async def enqueue_task(self, task: TaskRecord, *, now: float) -> None:
        """Queue a step attempt for a worker serving its queue (idempotent by task id)."""
        await self._write(lambda c: c.execute(_Q["enqueue_task"], (
            task.task_id, task.run_id, task.op, task.attempt, task.step, task.queue,
            task.args, task.info, now, now)))

    async def has_tasks(self, queues: Sequence[str] | None, steps: Sequence[str]) -> bool:
        """Whether a task this worker could run is waiting (a cheap read before a claim)."""
        if not steps:
            return False
        where, params = _queue_filter(queues)
        sql = _Q["next_task"].replace("{queues}", where).replace(
            "{steps}", ",".join("?" * len(steps)))
        return bool(self._read(sql, (*params, *steps)))

    async def claim_tasks(self, worker_id: str, queues: Sequence[str] | None,
                          steps: Sequence[str], limit: int, *, real_now: float
                          ) -> list[TaskRecord]:
        """Take up to ``limit`` waiting tasks of these queues and steps."""
        if not steps or limit <= 0:
            return []
        where, params = _queue_filter(queues)
        sql = _Q["claim_tasks"].replace("{queues}", where).replace(
            "{steps}", ",".join("?" * len(steps)))

        def op(conn: sqlite3.Connection) -> list[TaskRecord]:
            rows = conn.execute(sql, (worker_id, real_now, *params, *steps, limit)).fetchall()
            return [TaskRecord(task_id=r[0], run_id=r[1], op=r[2], attempt=r[3], step=r[4],
                               queue=r[5], args=r[6], info=r[7]) for r in rows]

        tasks: list[TaskRecord] = await self._write(op)
        return tasks

    async def complete_task(self, task: TaskRecord, worker_id: str, data: bytes | None,
                            meta: bytes, *, now: float) -> bool:
        """Mark a task done and send its outcome to the run's inbox, atomically.

        False when the task is no longer this worker's (its lease expired and another
        worker took it): the outcome is then dropped.
        """

        def op(conn: sqlite3.Connection) -> bool:
            if conn.execute(_Q["finish_task"], (now, task.task_id, worker_id)).rowcount != 1:
                return False
            row = conn.execute(_Q["run_by_id"], (task.run_id,)).fetchone()
            if row is not None and row["status"] in LIVE_STATUSES:
                send(conn, task.run_id, Message(kind=MessageKind.TASK_DONE,
                                                name=str(task.op), data=data, meta=meta),
                     now)
            return True

        done: bool = await self._write(op)
        return done

    async def cancel_task(self, task_id: str) -> None:
        """Drop a task nobody has started (the workflow no longer wants it)."""
        await self._write(lambda c: c.execute(_Q["cancel_task"], (task_id,)))

    async def purge_finished(self, *, before: float, limit: int = 500) -> int | None:
        """Delete up to ``limit`` runs that ended before ``before`` (durable time), with
        their histories, messages, state, updates and tasks. Returns how many went."""

        def op(conn: sqlite3.Connection) -> int:
            ids = [r[0] for r in conn.execute(_Q["purge_candidates"], (before, limit))]
            if not ids:
                return 0
            marks = ",".join("?" * len(ids))
            for table in ("events", "inbox", "heartbeats", "run_state", "updates", "tasks",
                          "runs"):
                conn.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
            return len(ids)

        deleted: int = await self._write(op)
        return deleted

    async def upsert_queue(self, config: QueueConfig, *, now: float) -> None:
        """Create or update a queue's limits."""
        await self._write(lambda c: c.execute(_Q["upsert_queue"], (
            config.name, config.concurrency, config.per_worker, config.rate_limit,
            config.rate_period, config.key_concurrency, now)))

    async def queue_stats(self, *, real_now: float) -> list[QueueStats]:
        """Every queue with runs or limits: depth, running count, limits."""
        conn = self._reader()
        configs = {c.name: c for c in _queue_configs(conn)}
        counts: dict[str, dict[str, int]] = {}
        for queue, status, n in self._read(_Q["queue_counts"]):
            counts.setdefault(queue, {})[status] = n
        out = []
        for name in sorted(set(configs) | set(counts)):
            config = configs.get(name, QueueConfig(name=name))
            started = 0
            if config.rate_limit is not None:
                started = self._read(_Q["queue_started_since"],
                                     (name, real_now - config.rate_period))[0][0]
            c = counts.get(name, {})
            out.append(QueueStats(config=config, pending=c.get("pending", 0),
                                  suspended=c.get("suspended", 0),
                                  running=c.get("running", 0), started_last_period=started))
        return out

    async def next_wake_at(self, names: Sequence[str]) -> float | None:
        if not names:
            return None
        sql = _Q["next_wake_for"].replace("{names}", ",".join("?" * len(names)))
        row = self._read(sql, names)
        return row[0][0] if row else None

    async def load_history(self, run_id: str) -> list[EventRecord]:
        return event_records(run_id, self._read_tuples(_Q["history"], (run_id,)))

    async def load_runs(
        self, run_ids: Sequence[str], *, history: Collection[str] | None = None
    ) -> dict[str, LoadedRun]:
        ids, want = histories_wanted(run_ids, history)
        if not ids:
            return {}
        msgs = self._read_tuples(_Q["runs_with_messages"], (orjson.dumps(ids).decode(),))
        events: list[tuple[Any, ...]] = []
        beats: list[tuple[Any, ...]] = []
        if want:
            arg = (orjson.dumps(want).decode(),)
            events = self._read_tuples(_Q["runs_history"], arg)
            beats = self._read_tuples(_Q["runs_heartbeats"], arg)
        return loaded_runs(ids, history, events, beats, msgs)

    async def get_run(self, workflow_id: str, run_id: str | None = None) -> RunRecord | None:
        if run_id is not None:
            rows = self._read(_Q["run_by_id"], (run_id,))
        else:
            rows = self._read(_Q["latest_run_by_workflow_id"], (workflow_id,))
            if not rows:  # accept a run id where a workflow id was expected
                rows = self._read(_Q["run_by_id"], (workflow_id,))
        return row_to_run(rows[0]) if rows else None

    async def list_runs(
        self, *, status: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        return [row_to_run(r) for r in self._read(_Q["list_runs"], (status, name, limit))]

    # -- workers and leases ------------------------------------------------------------

    async def register_worker(
        self, worker_id: str, host: str, pid: int, *, real_now: float, lease: float
    ) -> None:
        await self._write(lambda c: c.execute(
            _Q["register_worker"], (worker_id, host, pid, real_now, real_now + lease)))

    async def renew_worker(self, worker_id: str, *, real_now: float, lease: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(_Q["renew_worker"], (real_now + lease, worker_id)).rowcount == 1

        renewed: bool = await self._write(op)
        return renewed

    async def worker_pids(self, host: str) -> list[int]:
        return [r[0] for r in self._read(_Q["worker_pids"], (host,))]

    async def expire_dead_workers(self, host: str, dead_pids: Sequence[int]) -> int:
        if not dead_pids:
            return 0

        def op(conn: sqlite3.Connection) -> int:
            return sum(conn.execute(_Q["expire_worker_pid"], (host, pid)).rowcount
                       for pid in dead_pids)

        count: int = await self._write(op)
        return count

    async def expire_disconnected_workers(self) -> int:
        """Nothing to see: SQLite has no sessions, and every worker of a file is on this
        host, where :meth:`expire_dead_workers` (dead PIDs) already applies."""
        return 0

    async def deregister_worker(self, worker_id: str, *, now: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_Q["release_owned"], (now, now, worker_id))
            conn.execute(_Q["release_tasks_of"], (now, worker_id))
            conn.execute(_Q["delete_worker"], (worker_id,))

        await self._write(op)

    async def release(self, run_id: str, epoch: int, *, now: float) -> None:
        await self._write(lambda c: c.execute(_Q["release_run"], (now, now, run_id, epoch)))

    async def mark_trial(self, run_id: str, epoch: int) -> None:
        await self._write(lambda c: c.execute(_Q["mark_trial"], (run_id, epoch)))

    async def park(
        self, run_id: str, epoch: int, *, error: bytes, code_hash: str, now: float
    ) -> None:
        await self._write(
            lambda c: c.execute(_Q["park_run"], (error, code_hash, now, run_id, epoch))
        )

    async def unpark(self, name: str, code_hash: str, *, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(_Q["unpark"], (now, now, name, code_hash)).rowcount

        count: int = await self._write(op)
        return count

    async def resume_parked(self, workflow_id: str, *, now: float) -> RunRecord:
        def op(conn: sqlite3.Connection) -> RunRecord:
            row = conn.execute(_Q["live_run_by_workflow_id"], (workflow_id,)).fetchone()
            if row is None or row["status"] != "parked":
                raise RunNotFoundError(f"no parked run with workflow id {workflow_id!r}")
            conn.execute(_Q["resume_parked"], (now, now, row["run_id"]))
            return row_to_run(conn.execute(_Q["run_by_id"], (row["run_id"],)).fetchone())

        record: RunRecord = await self._write(op)
        return record

    # -- messages ------------------------------------------------------------------

    async def send_message(
        self, workflow_id: str, kind: str, name: str | None, data: bytes | None, *, now: float
    ) -> RunRecord:
        def op(conn: sqlite3.Connection) -> RunRecord:
            run_id = live_run_id(conn, workflow_id)
            send(conn, run_id, Message(kind=kind, name=name, data=data), now)
            return row_to_run(conn.execute(_Q["run_by_id"], (run_id,)).fetchone())

        record: RunRecord = await self._write(op)
        return record

    async def read_inbox(self, run_id: str) -> list[InboxMessage]:
        return [InboxMessage(id=r[0], kind=r[1], name=r[2], data=r[3], meta=r[4])
                for r in self._read(_Q["read_inbox"], (run_id,))]

    async def owned_runs(self, worker_id: str) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in self._read(_Q["owned_runs"], (worker_id,))]

    async def runs_with_inbox(self, worker_id: str) -> list[str]:
        return [r[0] for r in self._read(_Q["runs_with_inbox"], (worker_id,))]

    async def terminate(self, workflow_id: str, *, reason: str, now: float) -> RunRecord:
        error = terminated(reason)

        def op(conn: sqlite3.Connection) -> RunRecord:
            run_id = live_run_id(conn, workflow_id)
            close(conn, run_id, "terminated", error, now)
            return row_to_run(conn.execute(_Q["run_by_id"], (run_id,)).fetchone())

        record: RunRecord = await self._write(op)
        return record

    async def time_out(self, run_id: str, epoch: int, *, now: float) -> bool:
        """Close a run whose execution timeout passed (fenced by the caller's epoch)."""
        error = TIMED_OUT

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(_Q["run_by_id"], (run_id,)).fetchone()
            if row is None or row["epoch"] != epoch or row["status"] not in LIVE_STATUSES:
                return False
            close(conn, run_id, "timed_out", error, now)
            return True

        done: bool = await self._write(op)
        return done

    # -- children, continue-as-new, reset ---------------------------------------------

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
        or the database refuses it. Returns the child (or None) and the event recorded.
        """

        def op_(conn: sqlite3.Connection) -> tuple[RunRecord | None, NewEvent]:
            at = _append_before(conn, parent_run_id, epoch, seq, before, now)
            depth = conn.execute(_Q["run_depth"], (parent_run_id,)).fetchone()[0] + 1
            record: RunRecord | None = None
            event = too_deep(depth, max_depth, op, workflow_id, workflow_name, now)
            if event is None:
                try:
                    record, _ = create_run(
                        conn, run_id=run_id, workflow_id=workflow_id,
                        workflow_name=workflow_name, input=input, now=now, owner=owner,
                        on_conflict="fail", on_reuse="allow",
                        links=dataclasses.replace(links, depth=depth), placement=placement)
                    event = child_started_event(op, workflow_name, workflow_id, run_id, now)
                except WorkflowAlreadyStartedError as exc:
                    event = child_not_started(op, workflow_name, exc, str(exc), now)
            _insert_event(conn, parent_run_id, at, event)
            return record, event

        try:
            result: tuple[RunRecord | None, NewEvent] = await self._write(op_)
        except DataRejectedError as exc:
            # Recorded, not raised: the parent would replay and try again forever.
            event = child_not_started(op, workflow_name, exc, str(exc), now)

            def refused(conn: sqlite3.Connection) -> tuple[RunRecord | None, NewEvent]:
                at = _append_before(conn, parent_run_id, epoch, seq, before, now)
                _insert_event(conn, parent_run_id, at, event)
                return None, event

            result = await self._write(refused)
        return result

    async def continue_as_new(
        self, run_id: str, epoch: int, seq: int, events: Sequence[NewEvent], *,
        new_run_id: str, input: bytes, owner: str | None, now: float,
        carry: Sequence[Message] = (),
    ) -> RunRecord:
        """Close a run as continued-as-new and start its successor, atomically.

        The successor keeps the workflow id, parent, deadline and published state, and
        gets the messages ``carry`` and the old run's inbox (see
        :meth:`duro.store.Store.continue_as_new`).
        """
        rows = [(run_id, seq + i, e.kind, e.op, e.name, e.ts, e.data, e.meta)
                for i, e in enumerate(events)]

        def op(conn: sqlite3.Connection) -> RunRecord:
            fence = (seq + len(rows), now, "continued_as_new", None, None, None, True, now,
                     run_id, epoch, seq)
            if conn.execute(_Q["fence_transition"], fence).rowcount != 1:
                raise Fenced(run_id)
            conn.executemany(_Q["insert_event"], rows)
            for e in events:
                if e.kind in SIDE_EFFECT_KINDS:
                    project(conn, run_id, e)  # e.g. state published just before
            conn.execute(_Q["delete_heartbeats"], (run_id,))
            old = row_to_run(conn.execute(_Q["run_by_id"], (run_id,)).fetchone())
            links = RunLinks(parent_run_id=old.parent_run_id, parent_op=old.parent_op,
                             parent_close=old.parent_close, deadline_at=old.deadline_at,
                             origin_run_id=run_id, depth=old.depth)
            record, _ = create_run(conn, run_id=new_run_id, workflow_id=old.workflow_id,
                                    workflow_name=old.workflow_name, input=input, now=now,
                                    owner=owner, on_conflict="fail", on_reuse="allow",
                                    links=links,
                                    placement=Placement(queue=old.queue, priority=old.priority,
                                                        concurrency_key=old.concurrency_key))
            conn.execute(_Q["copy_state"], (new_run_id, run_id))
            move_inbox(conn, run_id, new_run_id, carry, now)
            return record

        record: RunRecord = await self._write(op)
        return record

    async def copy_run(
        self, source_run_id: str, *, upto_seq: int, drop_ops: Sequence[int], new_run_id: str,
        workflow_id: str, close_source: bool, reason: str, now: float,
    ) -> RunRecord:
        """Start a new run whose history is a prefix of another's (reset, retry, fork).

        Events ``[0, upto_seq)`` are copied, except outcomes of ``drop_ops``; with
        ``close_source`` a live source run is terminated in the same transaction (same
        workflow id: at most one live run).
        """
        dropped = set(drop_ops)
        error = terminated(reason)

        def op(conn: sqlite3.Connection) -> RunRecord:
            row = conn.execute(_Q["run_by_id"], (source_run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run {source_run_id!r}")
            source = row_to_run(row)
            if close_source and source.status.value in LIVE_STATUSES:
                close(conn, source_run_id, "terminated", error, now)
            # A run's end is never copied: the copy continues live from the prefix.
            events = [r for r in conn.execute(_Q["history_prefix"], (source_run_id, upto_seq))
                      if not (r["op"] in dropped and r["kind"] != EventKind.RUN_STARTED)
                      and r["kind"] not in TERMINAL_KINDS]
            if not events or events[0]["kind"] != EventKind.RUN_STARTED:
                raise StoreError("a copied history must start with run_started")
            links = RunLinks(origin_run_id=source_run_id)
            create_run(conn, run_id=new_run_id, workflow_id=workflow_id,
                       workflow_name=source.workflow_name, input=events[0]["data"], now=now,
                       owner=None, on_conflict="fail", on_reuse="allow", links=links,
                       started_event=False,
                       placement=Placement(queue=source.queue, priority=source.priority,
                                           concurrency_key=source.concurrency_key))
            conn.executemany(_Q["insert_event"], [
                (new_run_id, i, e["kind"], e["op"], e["name"], e["ts"], e["data"], e["meta"])
                for i, e in enumerate(events)])
            conn.execute("UPDATE runs SET history_len = ? WHERE run_id = ?",
                         (len(events), new_run_id))
            for e in events:
                if e["kind"] == EventKind.STATE_SET:
                    conn.execute(_Q["upsert_state"], (new_run_id, e["name"], e["data"], e["ts"]))
            return row_to_run(conn.execute(_Q["run_by_id"], (new_run_id,)).fetchone())

        record: RunRecord = await self._write(op)
        return record

    async def children(self, run_id: str) -> list[RunRecord]:
        """Runs started as children of this run."""
        return [row_to_run(r) for r in self._read(_Q["children_of"], (run_id,))]

    # -- state and updates ---------------------------------------------------------------

    async def get_state(self, run_id: str, key: str) -> bytes | None:
        rows = self._read(_Q["get_state"], (run_id, key))
        return rows[0][0] if rows else None

    async def request_update(
        self, workflow_id: str, message: Message, *, now: float
    ) -> tuple[RunRecord, UpdateOutcome]:
        """Queue an update for a live run, or return the outcome of the same update id."""

        def op(conn: sqlite3.Connection) -> tuple[RunRecord, UpdateOutcome]:
            row = conn.execute(_Q["live_run_by_workflow_id"], (workflow_id,)).fetchone()
            if row is None:
                row = conn.execute(_Q["latest_run_by_workflow_id"], (workflow_id,)).fetchone()
                if row is None:
                    raise RunNotFoundError(f"no run with workflow id {workflow_id!r}")
            record = row_to_run(row)
            # The same id again: its outcome, in whichever run of the chain has it (an
            # earlier one, if the run continued as new since).
            existing = conn.execute(_Q["find_update"], (workflow_id, message.update_id)
                                    ).fetchone()
            if existing is not None:
                if existing[0] != record.run_id:
                    record = row_to_run(conn.execute(_Q["run_by_id"],
                                                     (existing[0],)).fetchone())
                return record, UpdateOutcome(status=existing[1], result=existing[2],
                                             error=existing[3])
            if record.status.value not in LIVE_STATUSES:
                raise RunNotFoundError(f"no live run with workflow id {workflow_id!r}")
            send(conn, record.run_id, message, now)
            return record, UpdateOutcome(status="requested")

        result: tuple[RunRecord, UpdateOutcome] = await self._write(op)
        return result

    async def get_update(self, run_id: str, update_id: str) -> UpdateOutcome | None:
        rows = self._read(_Q["get_update"], (run_id, update_id))
        if not rows:
            return None
        return UpdateOutcome(status=rows[0][0], result=rows[0][1], error=rows[0][2])

    async def find_update(self, workflow_id: str,
                          update_id: str) -> tuple[str, UpdateOutcome] | None:
        rows = self._read(_Q["find_update"], (workflow_id, update_id))
        if not rows:
            return None
        r = rows[0]
        return r[0], UpdateOutcome(status=r[1], result=r[2], error=r[3])

    async def reject_update(
        self, run_id: str, update_id: str, message_id: int, *, error: bytes, now: float
    ) -> None:
        """Record a rejected update outside the history and drop its message."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_Q["set_update"], ("rejected", None, error, now, run_id, update_id))
            conn.execute(_Q["delete_inbox_message"], (message_id,))

        await self._write(op)

    # -- heartbeats ----------------------------------------------------------------

    async def save_heartbeat(self, run_id: str, op: int, details: bytes, *, now: float) -> None:
        await self._write(lambda c: c.execute(_Q["save_heartbeat"], (run_id, op, details, now)))


def _split_statements(sql: str) -> list[str]:
    out, buf = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        if line.rstrip().endswith(";") and sqlite3.complete_statement("\n".join(buf)):
            out.append("\n".join(buf))
            buf = []
    if "".join(buf).strip():
        out.append("\n".join(buf))
    return out

