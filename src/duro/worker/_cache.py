"""The durable step cache on the worker's side: a cached step's key (once per command),
its lookup before an attempt runs or is queued, and storing a success.

A hit is recorded as the step's ``step_completed`` (``_local_steps.cache_hit``), so
replay never reads the cache. Every store fault here is a miss, or an entry not stored:
the cache saves work, it never fails a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from duro.errors import DuroError
from duro.store import CacheEntry
from duro.workflow._instance import StepCommand

if TYPE_CHECKING:
    from duro.worker._held import HeldRun
    from duro.worker._worker import Worker

__all__ = ["CacheKey", "CacheSweep", "find", "key_for", "remember"]

log = logging.getLogger("duro.worker")

_SWEEP_EVERY = 60.0
"""Seconds (of the engine's clock) between deletions of expired entries."""
_SWEEP_BATCH = 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheKey:
    """Where one call's result is (or goes) in the cache."""

    namespace: str
    scope: str
    key: str
    ttl: float | None


def key_for(held: HeldRun, cmd: StepCommand) -> CacheKey | None:
    """The key of a cached step's call (None: the call has no scope; it runs uncached).

    Raises:
        SerializationError, InvalidArgumentError: The arguments are not JSON, the scope
            key is not a string; or what a scope function raised: the attempt fails so.
    """
    cache = cmd.step.cache
    assert cache is not None
    inst = held.inst
    found = cache.key_of(cmd.step.name, cmd.step.signature, cmd.args, cmd.kwargs,
                         inst.headers)
    if found is None:
        return None
    return CacheKey(namespace=inst.namespace, scope=found[0], key=found[1], ttl=cache.ttl)


async def find(w: Worker, key: CacheKey) -> CacheEntry | None:
    """The live entry of ``key``, or None (also when the store fails: a miss)."""
    try:
        return await w.store.cache_get(key.namespace, key.scope, key.key, now=w.clock.now())
    except DuroError as exc:
        log.warning("step cache lookup failed (the step runs): %s", exc)
        return None


async def remember(w: Worker, key: CacheKey, step: str, stored: bytes | None,
                   run_id: str) -> None:
    """Store a success (``stored``: the result in its stored form, codecs applied)."""
    if stored is None:
        return
    now = w.clock.now()
    entry = CacheEntry(namespace=key.namespace, scope=key.scope, key=key.key, step=step,
                       result=stored, run_id=run_id, created_at=now,
                       expires_at=None if key.ttl is None else now + key.ttl)
    try:
        await w.store.cache_put(entry)
    except DuroError as exc:
        log.warning("step %s: its result could not be cached: %s", step, exc)


async def remember_tasks(w: Worker, held: HeldRun, ops: list[tuple[int, bytes | None]]) -> None:
    """Store the successes of cached steps run by a step queue's worker (``ops``: op and
    plain result of each ``step_completed`` a ``task_done`` message became)."""
    for op, data in ops:
        cmd = held.inst.commands.get(op)
        if isinstance(cmd, StepCommand) and isinstance(cmd.cache_key, CacheKey):
            try:
                stored = await w.payloads.encode(data)
            except Exception as exc:  # a codec's fault: the result is not cached
                log.warning("step %s: its result could not be encoded for the cache: %s",
                            cmd.step.name, exc)
                continue
            await remember(w, cmd.cache_key, cmd.step.name, stored, held.run_id)


class CacheSweep:
    """Deletes expired entries, every minute of the engine's clock, from any worker
    (lookups ignore them meanwhile; a delete of what another worker deleted is a no-op)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        # The first sweep a minute after start, not at once: no write at every start-up.
        self._swept_at = worker.clock.now()

    async def poll(self) -> None:
        w = self.worker
        now = w.clock.now()
        if now - self._swept_at < _SWEEP_EVERY:
            return
        self._swept_at = now
        try:
            while await w.store.cache_expire(now=now, limit=_SWEEP_BATCH) == _SWEEP_BATCH:
                pass
        except DuroError as exc:
            log.warning("step cache: expired entries not deleted: %s", exc)
