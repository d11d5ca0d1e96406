"""Liveness through the database session: a worker that dies is known dead at once.

Each worker registered through a store holds a session-level advisory lock keyed by its
worker id, on a connection of the store's own, for as long as it lives. When the process
dies (SIGKILL, crash, OOM kill), its kernel closes the socket, the server ends the session
and the lock is free within milliseconds. Other workers probe the locks of the registered
workers about twice a second and expire the lease of a worker whose lock went free at once,
instead of waiting for it to run out; their next claim takes its runs over.

The lease stays in charge of everything a session cannot tell: a host that froze, or lost
its network, keeps its session (the server sees no FIN) and its lock, so its lease decides,
as before. Presuming a worker dead is never a safety question: a worker wrongly presumed
dead (its lock connection dropped, say) only loses its runs, its late writes fenced out.

A probe presumes a worker dead only when a previous probe of ours, made while our own
session held our lock, saw its lock held, and our session still holds ours, on the same
server instance. A server restart or a failover to a standby ends every session at once:
without this rule every worker would presume every other dead and take its runs. A worker
that never held a lock (an older duro, one still starting) is never presumed dead by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg

from duro.store.postgres._sql import queries
from duro.store.postgres._writer import short_error

__all__ = ["Liveness"]

log = logging.getLogger("duro.store.postgres")
_Q = queries()
Conn = psycopg.AsyncConnection[Any]

# Another worker's probe may hold a free lock for the length of one statement.
_LOCK_TRIES = 40
_LOCK_PAUSE = 0.05
# After a failure to hold the locks, probes wait this long before trying again, so that a
# server that cannot do it is not asked twice a second.
_RETRY_AFTER = 5.0


class Liveness:
    """The liveness locks of one store's workers, and the judgement of other workers' probes.

    Args:
        connect: Opens a new autocommit connection (one is kept for the locks).
        prefix: Put before a worker id to make its lock's key (per schema: advisory locks
            are per database).
    """

    def __init__(self, connect: Callable[[], Awaitable[Conn]], prefix: str) -> None:
        self._connect = connect
        self.prefix = prefix
        self._conn: Conn | None = None
        self._wanted: set[str] = set()  # workers registered through this store
        self._held: set[str] = set()  # ... whose lock our session holds now
        self._server: datetime | None = None  # start of the server instance holding them
        self._seen: set[str] = set()  # other workers a probe saw holding their lock
        self.generation = 0  # bumped whenever our session is replaced
        self.probe_failed = False  # the last probe failed (logged once)
        self._retry_at = 0.0
        self._mutex = asyncio.Lock()

    async def hold(self, worker_id: str) -> None:
        """Hold ``worker_id``'s lock from now on (logs a failure: the lease still works)."""
        async with self._mutex:
            self._wanted.add(worker_id)
            await self._ensure(force=True)

    async def release(self, worker_id: str) -> None:
        """Stop holding ``worker_id``'s lock (after its row was deleted)."""
        async with self._mutex:
            self._wanted.discard(worker_id)
            if worker_id in self._held and self._conn is not None:
                self._held.discard(worker_id)
                try:
                    await self._conn.execute(_Q["worker_session_unlock"],
                                             {"prefix": self.prefix, "worker": worker_id})
                except psycopg.Error:
                    await self._reset()
            if not self._wanted:
                await self._reset()

    async def close(self) -> None:
        async with self._mutex:
            self._wanted.clear()
            await self._reset()

    def probe_params(self) -> tuple[int, dict[str, Any]]:
        """The generation of our session and the parameters of ``worker_sessions``."""
        return self.generation, {"prefix": self.prefix, "ours": sorted(self._held)}

    async def judge(self, rows: Sequence[tuple[str, bool, datetime]], generation: int
                    ) -> list[str]:
        """The workers that ``rows`` (``worker_sessions``, read with
        :meth:`probe_params`) show dead: seen holding their lock before, free now."""
        async with self._mutex:
            if generation != self.generation or not self._held:
                # Not registered, or our session was replaced meanwhile: no judgement.
                await self._ensure()
                return []
            if not rows:  # cannot be: our own locks are in
                return []
            free = {worker for worker, is_free, _ in rows if is_free}
            server = rows[0][2]
            if self._held & free or server != self._server:
                # Our session ended (the server restarted, failed over, or dropped us):
                # others may presume us dead and take our runs (our late writes are then
                # fenced out); we must not presume the same of them.
                log.warning("this worker's database session was lost; other workers may "
                            "take its runs over; reconnecting")
                await self._reset()
                await self._ensure()
                return []
            dead = sorted(self._seen & free)
            self._seen = {worker for worker, is_free, _ in rows if not is_free} - self._wanted
            if self._wanted - self._held:
                await self._ensure()
            return dead

    async def _ensure(self, *, force: bool = False) -> None:
        """Connect if needed and take the locks not held yet; log failures, never raise:
        liveness only speeds failover up."""
        if not self._wanted or (not force and time.monotonic() < self._retry_at):
            return
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                await self._reset()
                self._conn = await self._connect()
                self.generation += 1
                if self._conn.info.server_version >= 140000:
                    await self._conn.execute(_Q["worker_session_keep"])
            for worker in sorted(self._wanted - self._held):
                if await self._lock(self._conn, worker):
                    self._held.add(worker)
                else:
                    self._retry_at = time.monotonic() + _RETRY_AFTER
        except psycopg.Error as exc:
            log.warning("cannot hold this worker's liveness lock (%s): other workers will "
                        "see it dead only when its lease expires", short_error(exc))
            await self._reset()
            self._retry_at = time.monotonic() + _RETRY_AFTER

    async def _lock(self, conn: Conn, worker: str) -> bool:
        for _ in range(_LOCK_TRIES):
            cur = await conn.execute(_Q["worker_session_lock"],
                                     {"prefix": self.prefix, "worker": worker})
            row = await cur.fetchone()
            if row is not None and row[0]:
                self._server = row[1]
                return True
            await asyncio.sleep(_LOCK_PAUSE)
        log.warning("the liveness lock of worker %s is held by another session: other "
                    "workers will see it dead only when its lease expires", worker)
        return False

    async def _reset(self) -> None:
        """Forget our session: its locks, and what its probes saw."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self.generation += 1
            with contextlib.suppress(Exception):
                await conn.close()
        self._held.clear()
        self._seen.clear()
        self._server = None
