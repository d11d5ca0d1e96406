"""Durable time: what timers, ``duro.now()`` and event timestamps are measured in, and
the one conversion of a stored time (seconds since the epoch) to the read models' UTC
datetimes and their JSON form (ISO 8601).

Leases always use real time; only durable time can be controlled, so a test can jump
a thousand sleeping workflows an hour ahead without real waiting or expiring leases.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any, overload

__all__ = ["Clock", "ManualClock", "SystemClock", "iso", "parse_time", "utc"]


@overload
def utc(ts: float) -> dt.datetime: ...
@overload
def utc(ts: None) -> None: ...
def utc(ts: float | None) -> dt.datetime | None:
    """A stored time (seconds since the epoch) as a UTC datetime, None as None."""
    return None if ts is None else dt.datetime.fromtimestamp(ts, tz=dt.UTC)


@overload
def iso(when: dt.datetime) -> str: ...
@overload
def iso(when: None) -> None: ...
def iso(when: dt.datetime | None) -> str | None:
    """A time as ISO 8601 (UTC offset kept), None as None: the read models' JSON form."""
    return None if when is None else when.isoformat()


@overload
def parse_time(text: str) -> dt.datetime: ...
@overload
def parse_time(text: Any) -> dt.datetime | None: ...
def parse_time(text: Any) -> dt.datetime | None:
    """A time of a read model's JSON form (:func:`iso`) back as a datetime, None as None.

    Raises:
        ValueError: Not such a time.
    """
    return None if text is None else dt.datetime.fromisoformat(text)


class Clock:
    """Wall-clock durable time (seconds since the epoch)."""

    jumps: bool = False
    """True for a clock that moves by jumps standing for time that passes (ManualClock):
    what a running worker's scheduler was looking at while the clock jumped over it
    (schedule ticks) happens as it would have with time passing, and is not counted
    as missed downtime."""

    def now(self) -> float:
        """The current durable time."""
        return time.time()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from any thread) when time jumps; returns an unsubscriber."""
        return lambda: None


class SystemClock(Clock):
    """The real clock (the default)."""


class ManualClock(Clock):
    """A clock that only moves when told to: for tests and time skipping.

    ``advance(seconds)`` is time passing: workers using the clock fire the timers and
    the schedule ticks it jumps over, each once and in order, as if they had been
    running all along (a tick is counted as missed only when no worker was running).

    Args:
        start: The initial time; defaults to the real current time.
    """

    jumps = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward and wake every worker using this clock; returns the new time."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += seconds
            listeners = list(self._listeners)
        for callback in listeners:
            callback()
        return self._now

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe
