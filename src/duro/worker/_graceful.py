"""Graceful shutdown (SIGTERM): drain within a grace period, then release at once."""

from __future__ import annotations

from duro.worker._worker import Worker

__all__ = ["drain"]


async def drain(worker: Worker, grace: float) -> bool:
    """Stop claiming and starting step attempts, let running attempts finish within
    ``grace`` seconds, and return whether every run was handed back in time. Close the
    engine (or :meth:`Worker.stop`) next: it releases what is left and the lease."""
    return await worker.drain(grace)
