"""Wake-ups from other processes: a dedicated connection LISTENing on the schema's channel.

Writers send ``pg_notify`` at most once per transaction batch, and only when runs may
have become claimable (new pending run, message, release, unpark); PostgreSQL folds
identical notifications of one transaction into one. The listener calls its callbacks for
every notification not sent by its own store (the worker already knows what it did
itself), and once after each reconnection (something may have happened meanwhile).
Workers poll as well, so a lost notification costs latency, never a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from duro.store.postgres._writer import short_error

__all__ = ["Listener"]

log = logging.getLogger("duro.store.postgres")


class Listener:
    """Calls callbacks when the channel gets a notification from another store."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
        channel: str,
        token: str,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._token = token
        self._callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self.received = 0

    def add(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Register ``callback``; returns the function that removes it."""
        self._callbacks.append(callback)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="duro-pg-listen")

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove

    def _fire(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:  # a subscriber's bug must not stop the others
                log.exception("wake-up callback failed")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = 0.1
        first = True
        while True:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await self._connect()
                await conn.execute(f'LISTEN "{self._channel}"')
                self.listening.set()
                if not first:
                    self._fire()
                first = False
                delay = 0.1
                async for note in conn.notifies():
                    if note.payload != self._token:
                        self.received += 1
                        self._fire()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.info("notification listener: %s; reconnecting", short_error(exc))
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
