"""Retention: finished runs older than a configurable age are deleted, with their history,
in small batches, by one worker at a time, so the hot tables stay small.

Each worker may run :func:`retention_loop`; the store serializes the purgers (PostgreSQL:
a transaction-scoped advisory lock per schema, so a crashed purger holds nothing), and a
worker that finds the lock taken skips its turn. Each batch is its own short transaction
on a pooled connection, beside the group-commit writer, so the hot path does not wait
for deletes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from duro._checks import check_count, check_duration
from duro._clock import Clock
from duro.errors import DuroError

__all__ = ["RetentionPolicy", "SupportsPurge", "purge_once", "retention_loop"]

log = logging.getLogger("duro.worker.retention")


@runtime_checkable
class SupportsPurge(Protocol):
    """A store that can delete finished runs (PostgreSQL today)."""

    async def purge_finished(self, *, before: float, limit: int = 500) -> int | None:
        """Delete up to ``limit`` runs that ended before ``before``; None when another
        worker is purging."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class RetentionPolicy:
    """How long finished runs are kept, and how the purge paces itself.

    Args:
        keep: Seconds (of durable time) a finished run is kept after it ended.
        interval: Seconds between purges.
        batch: Runs deleted per transaction.
        pause: Seconds between two batches of one purge (room for other work).
    """

    keep: float
    interval: float = 300.0
    batch: int = 500
    pause: float = 0.05

    def __post_init__(self) -> None:
        check_duration(self.keep, "retention keep", zero=True)
        check_duration(self.interval, "retention interval")
        check_count(self.batch, "retention batch")
        check_duration(self.pause, "retention pause", zero=True)


async def purge_once(store: SupportsPurge, policy: RetentionPolicy, now: float) -> int:
    """Delete every run that ended more than ``policy.keep`` before ``now``, batch by
    batch; stop early when another worker holds the purge. Returns how many went."""
    total = 0
    while True:
        deleted = await store.purge_finished(before=now - policy.keep, limit=policy.batch)
        if deleted is None:
            return total
        total += deleted
        if deleted < policy.batch:
            return total
        await asyncio.sleep(policy.pause)


async def retention_loop(store: object, policy: RetentionPolicy, clock: Clock) -> None:
    """Purge every ``policy.interval`` seconds until cancelled (a worker's task)."""
    if not isinstance(store, SupportsPurge):
        log.warning("retention is not supported by this store (%s); finished runs are kept",
                    type(store).__name__)
        return
    while True:
        try:
            deleted = await purge_once(store, policy, clock.now())
            if deleted:
                log.info("retention: deleted %d finished run(s)", deleted)
        except DuroError as exc:
            log.warning("retention: %s; trying again in %gs", exc, policy.interval)
        await asyncio.sleep(policy.interval)
