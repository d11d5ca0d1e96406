"""When the runs a worker holds are due: their timers, retry backoffs and deadlines."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container

__all__ = ["Wakeups"]


class Wakeups:
    """A heap of (due time, run id) for the runs held in memory.

    Entries are never removed when a run stops being held (suspended, ended, dropped):
    the worker skips them when they come due, and the store's ``wake_at`` brings the
    run back. :meth:`compact` keeps them from piling up.

    Args:
        on_earlier: Called when an entry becomes the earliest (the worker's main loop
            recomputes its wait, without looking at the store).
    """

    def __init__(self, on_earlier: Callable[[], object]) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0  # ties in time keep the order they were added in
        self._kept = 0  # heap size after its last rebuild
        self._on_earlier = on_earlier

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, at: float, run_id: str) -> None:
        """Wake the run at ``at`` (durable time)."""
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, run_id))
        if self._heap[0][2] == run_id:
            self._on_earlier()  # an earlier wake-up: recompute the wait, no store look

    def next_at(self) -> float | None:
        """The earliest entry's time."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[str]:
        """The runs with entries due by ``now``, in due order, once each."""
        heap = self._heap
        due: dict[str, None] = {}
        while heap and heap[0][0] <= now:
            due[heapq.heappop(heap)[2]] = None
        return list(due)

    def compact(self, held: Container[str], held_count: int) -> None:
        """Drop the entries of runs no longer held, once they outnumber the live ones.

        With many sleeping runs they would hold memory for each. Held runs can have
        several entries each (a timer, a deadline, a retry): then the heap may stay
        above that bound after a rebuild, and rebuilding again on every suspension
        would be quadratic, so wait for 1,024 new entries first (unless none is live).
        """
        n = len(self._heap)
        if n <= 2 * held_count + 1024:
            return
        if held_count and n <= self._kept + 1024:
            return
        self._heap = [entry for entry in self._heap if entry[2] in held]
        heapq.heapify(self._heap)
        self._kept = len(self._heap)
