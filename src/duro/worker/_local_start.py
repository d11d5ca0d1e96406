"""A slot a worker reserves for a run the engine is about to create owned by it (a local
start: the run goes straight to the worker, with no claim round trip)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from duro.store import Claim, RunLinks
    from duro.worker._worker import Worker

__all__ = ["LocalStart"]


class LocalStart:
    """A slot reserved for a run about to be created (see :meth:`Worker.local_start`)."""

    __slots__ = ("_worker", "adopted", "local")

    def __init__(self, worker: Worker, local: bool) -> None:
        self._worker = worker
        self.local = local
        """Whether the run is created owned by this worker (there was room)."""
        self.adopted = False

    def adopt(self, claim: Claim, input: bytes, ts: float,
              links: RunLinks | None = None) -> None:
        """Run the created run here (:meth:`Worker.adopt`): the slot is its own."""
        self.adopted = True
        self._worker.adopt(claim, input, ts, links)
