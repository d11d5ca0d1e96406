"""Sagas: undo completed steps, in reverse order, when a later one fails."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

__all__ = ["Saga"]

log = logging.getLogger("duro.saga")


class Saga:
    """Collects compensations as a workflow makes progress and runs them in reverse on
    failure or cancellation.

    Compensations are ordinary steps, so they are durable like any other: if the worker
    dies halfway through compensating, the run resumes and each compensation that
    already completed is not run again::

        async with duro.Saga() as saga:
            flight = await book_flight(trip)
            saga.add(cancel_flight, flight)
            hotel = await book_hotel(trip)
            saga.add(cancel_hotel, hotel)
            await charge(trip)   # raises -> cancel_hotel, then cancel_flight, then re-raise

    Args:
        continue_on_error: Keep compensating when a compensation fails for good (the
            first such error is raised at the end); otherwise stop at it.
    """

    def __init__(self, *, continue_on_error: bool = True) -> None:
        self._compensations: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...],
                                        dict[str, Any]]] = []
        self.continue_on_error = continue_on_error

    def add(self, compensation: Callable[..., Awaitable[Any]], *args: Any,
            **kwargs: Any) -> None:
        """Register how to undo what just succeeded (usually a step and its arguments)."""
        self._compensations.append((compensation, args, kwargs))

    async def compensate(self) -> None:
        """Run the registered compensations, last first (each once), then forget them."""
        first_error: BaseException | None = None
        while self._compensations:
            fn, args, kwargs = self._compensations.pop()
            try:
                await fn(*args, **kwargs)
            except Exception as exc:
                if not self.continue_on_error:
                    raise
                log.warning("compensation %r failed: %s", fn, exc)
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    async def __aenter__(self) -> Saga:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and isinstance(exc, Exception | _cancelled()):
            await self.compensate()


def _cancelled() -> type[BaseException]:
    import asyncio

    return asyncio.CancelledError
