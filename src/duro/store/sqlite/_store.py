"""The SQLite store: WAL, ``synchronous=FULL`` by default, one writer thread with group
commit, and a reader connection for the caller's thread."""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlparse

import orjson

from duro.errors import (
    DatabaseLockedError,
    DatabaseReadOnlyError,
    DataRejectedError,
    InvalidStoreURLError,
    RunNotFoundError,
    StoreError,
    WorkflowAlreadyStartedError,
)
from duro.store._base import Ambiguous, Op, Params, SqlStore
from duro.store._protocol import Fenced
from duro.store._records import EventRecord, LoadedRun, NewEvent, event_records
from duro.store._rows import Row, histories_wanted, loaded_runs
from duro.store._sqlfiles import pending_migrations
from duro.store._url import redact
from duro.store.sqlite._file import FileWatch
from duro.store.sqlite._sql import PACKAGE, queries
from duro.store.sqlite._tx import bind, fenced_append, insert_run, sqlite_op
from duro.store.sqlite._wal import presize_wal
from duro.store.sqlite._writer import Writer, fresh

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
    if isinstance(exc, sqlite3.IntegrityError) and str(exc).startswith("UNIQUE constraint"):
        # A row with this key exists: the write is out of step with the store (an
        # operation's outcome recorded already), not a bad value. As on PostgreSQL: a
        # store fault, after which the worker reloads the run from its history.
        what = "this operation's outcome is already recorded" \
            if str(exc).endswith("events.run_id, events.op") else \
            "a row with this key already exists"
        return StoreError(f"{what} ({exc})")
    if isinstance(exc, sqlite3.DataError | sqlite3.IntegrityError):
        return DataRejectedError(f"the database refused a value ({exc})")
    if isinstance(exc, sqlite3.DatabaseError):
        return StoreError(f"database error: {exc}")
    return exc


_CATCH_UP_RUNS = 500
"""Pending runs brought into the stats rollup per writer transaction: about 40 ms for runs
of 10 events (8 us an event, bench_stats.py --triggers), which the workers' commits may
wait."""
_CATCH_UP_BATCHES = 2000
"""At most this many batches per stats read (1,000,000 runs); what is left is read as
pending."""


class SqliteStore(SqlStore):
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
        read_only: Open for reading only (also ``?mode=ro``): no writer, no migration,
            nothing created (neither the file nor its ``-wal``/``-shm``); every write
            raises :class:`~duro.DatabaseReadOnlyError`. For inspection (``duro ls``)
            by a user who may only read the file.
    """

    stats_batches = (_CATCH_UP_RUNS, _CATCH_UP_BATCHES)

    def __init__(
        self, url: str, *, synchronous: Synchronous | None = None, busy_timeout: float = 10.0,
        inline_commits: bool | None = None, read_only: bool | None = None,
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
        if read_only is None:
            mode = options.get("mode", "rw")
            if mode not in ("ro", "rw"):
                raise InvalidStoreURLError(f"URL option mode={mode!r}: expected ro or rw")
            read_only = mode == "ro"
        self.read_only = read_only
        self._writer: Writer | None = None
        self._file: FileWatch | None = None
        self._local = threading.local()
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SqliteStore {self.path}>"

    # -- connections ---------------------------------------------------------------

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
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

    def _connect_read_only(self) -> sqlite3.Connection:
        """A connection that writes nothing, not even the ``-wal``/``-shm`` files.

        SQLite's ``mode=ro`` alone still creates both beside a WAL database when they are
        missing (no process has it open) and, being read-only, cannot remove them: they
        stay, owned by the reader, and a directory the reader may not write makes it
        fail. So when there is no ``-wal`` the file is read as ``immutable`` (no locks,
        no shared memory); when there is one, a writer has it open (or crashed with it)
        and its files are used as they are.
        """
        path = Path(self.path).resolve()
        if not path.is_file():
            raise StoreError(f"no database at {str(path)!r}")
        immutable = "" if Path(f"{path}-wal").exists() else "&immutable=1"
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro{immutable}", uri=True,
                               isolation_level=None, check_same_thread=False,
                               timeout=self.busy_timeout, cached_statements=256)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        return conn

    def _check_schema(self) -> None:
        """Read-only: the schema must be this duro's (nothing can migrate it here)."""
        try:
            done = {r[0] for r in self._reader().execute("SELECT version FROM duro_migrations")}
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path} is not a duro database ({exc})") from None
        if pending_migrations(PACKAGE, done, f"of {self.path} "):
            raise StoreError(f"the schema of {self.path} is older than this duro: open it "
                             f"once for writing (`duro db migrate`) before reading it")

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
            raise fresh(self._writer.failure)  # e.g. the file is gone: what we read is stale
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

    async def _fetch(self, query: str, params: Params) -> list[Row]:
        """Rows of a named query, read on this thread's connection (WAL readers do not
        block the writer)."""
        try:
            rows: list[Row] = self._reader().execute(_Q[query], bind(params)).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc) from None
        return rows

    async def _fetch_all(self, queries: Sequence[str], params: Params) -> list[list[Row]]:
        """As :meth:`_fetch`, each query in turn in one read transaction: one snapshot,
        whatever the writer commits meanwhile."""
        conn = self._reader()
        try:
            conn.execute("BEGIN")
            try:
                return [conn.execute(_Q[q], bind(params)).fetchall() for q in queries]
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _translate(exc) from None

    async def stats_catch_up(self) -> int | None:
        """A batch of the stats rollup's catch-up (migration 0016), one writer
        transaction (:meth:`StatsReads.stats_catch_up`)."""
        if self._writer is None:
            return None
        done: int = await self._writer.submit(_catch_up, on_thread=True)
        return done

    def _read_tuples(self, query: str, params: Params) -> list[tuple[Any, ...]]:
        """As :meth:`_fetch`, in plain tuples: a ``sqlite3.Row`` per row costs more, which
        shows on long histories."""
        try:
            cur = self._reader().cursor()
            cur.row_factory = None
            rows: list[tuple[Any, ...]] = cur.execute(_Q[query], params).fetchall()
            return rows
        except sqlite3.Error as exc:
            raise _translate(exc) from None

    async def _write(self, op: Op, *, notify: bool = False,
                     ambiguous: Ambiguous = "fail") -> Any:
        """Run a shared operation in the writer (``notify`` and ``ambiguous`` do not
        apply: workers poll the file, and a commit's answer is never lost)."""
        return await self._committed(sqlite_op(op))

    async def _insert_plain(self, params: Params) -> bool:
        """The start's insert straight on the writer's connection (see the base's)."""
        args = bind(params)

        def run(conn: sqlite3.Connection) -> bool:
            return insert_run(conn, args)

        return bool(await self._committed(run))

    async def _append_plain(self, run_id: str, epoch: int, first_seq: int,
                            events: Sequence[NewEvent], now: float) -> None:
        """The fenced append straight on the writer's connection: no operation, no
        transaction object (a step's outcome: the hot path)."""
        def run(conn: sqlite3.Connection) -> None:
            fenced_append(conn, run_id, epoch, first_seq, events, now=now)

        await self._committed(run)

    async def _committed(self, run: Callable[[sqlite3.Connection], Any]) -> Any:
        """``run(conn)`` in a writer transaction, once committed: inline when the writer
        is idle (``inline_commits``), else in its next batch."""
        if self._writer is None:
            raise self._not_writable()
        if self.inline_commits:
            done, value = self._writer.try_inline(run)
            if done:
                return value
        return await self._writer.submit(run)

    def _not_writable(self) -> StoreError:
        if self.read_only:
            return DatabaseReadOnlyError(f"{self.path} was opened read-only (mode=ro)")
        return StoreError("the store is not open")

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Open the file (creating it), migrate, and start the writer thread; read-only:
        check that the file is a duro database of this version, and start nothing."""
        self._readers: list[sqlite3.Connection] = []
        if self.read_only:
            await asyncio.to_thread(self._check_schema)
            return

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

        self._writer = Writer(connect, _translate, guard=self._check_file,
                              busy_timeout=self.busy_timeout)
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

    @property
    def write_seconds(self) -> float:
        """Seconds spent committing so far (with :attr:`write_stats`: the mean latency
        of a transaction)."""
        return self._writer.busy if self._writer else 0.0

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS duro_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM duro_migrations")}
            for version, name, sql in pending_migrations(PACKAGE, done, ""):
                for statement in _split_statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO duro_migrations VALUES (?, ?, strftime('%s','now'))",
                    (version, name),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- reads of histories and retention -------------------------------------------

    async def load_history(self, run_id: str) -> list[EventRecord]:
        """See :meth:`duro.store.ClientStore.load_history`."""
        return event_records(run_id, self._read_tuples("history", {"run_id": run_id}))

    async def load_runs(
        self, run_ids: Sequence[str], *, history: Collection[str] | None = None
    ) -> dict[str, LoadedRun]:
        """See :meth:`duro.store.WorkerStore.load_runs`."""
        ids, want = histories_wanted(run_ids, history)
        if not ids:
            return {}
        msgs = self._read_tuples("runs_with_messages", {"ids": orjson.dumps(ids).decode()})
        events: list[tuple[Any, ...]] = []
        beats: list[tuple[Any, ...]] = []
        if want:
            arg = {"ids": orjson.dumps(want).decode()}
            events = self._read_tuples("runs_history", arg)
            beats = self._read_tuples("runs_heartbeats", arg)
        return loaded_runs(ids, history, events, beats, msgs)

    async def purge_finished(self, *, before: float, limit: int = 500) -> int | None:
        """Delete up to ``limit`` runs that ended before ``before`` (durable time), with
        their histories, messages, state, updates, tasks, search attributes, signal ids and
        approvals, streams.
        Returns how many went."""

        def op(conn: sqlite3.Connection) -> int:
            ids = [r[0] for r in conn.execute(_Q["purge_candidates"],
                                              {"before": before, "limit": limit})]
            if not ids:
                return 0
            marks = ",".join("?" * len(ids))
            for table in ("events", "inbox", "heartbeats", "run_state", "updates", "tasks",
                          "run_search_attributes", "signal_ids", "approvals", "run_streams",
                          "run_stream_ops", "runs"):
                conn.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
            return len(ids)

        if self._writer is None:
            raise self._not_writable()
        deleted: int = await self._writer.submit(op, on_thread=True)
        return deleted


def _catch_up(conn: sqlite3.Connection) -> int:
    """Bring up to :data:`_CATCH_UP_RUNS` pending runs into the stats rollup (the
    ``stats_catch_up_*`` queries, in their order); returns how many."""
    limit = {"limit": _CATCH_UP_RUNS}
    for name in ("stats_catch_up_runs_out", "stats_catch_up_runs_in",
                 "stats_catch_up_steps", "stats_catch_up_counted"):
        conn.execute(_Q[name], limit)
    done: int = conn.execute(_Q["stats_catch_up_done"], limit).rowcount
    return done


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

