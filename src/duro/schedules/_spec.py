"""When a schedule fires: cron expressions in a time zone, or fixed intervals.

Cron expressions are evaluated on the wall clock of the schedule's time zone (with
``croniter`` on naive local times, then placed in the zone with ``zoneinfo``), so DST
behaves as people expect of a wall clock:

- a local time that does not exist (the hour skipped when clocks go forward) is
  skipped: ``30 2 * * *`` does not fire on that day;
- a local time that happens twice (the hour repeated when clocks go back) fires once,
  at its first occurrence.

Fixed intervals fire every ``every`` seconds at ``anchor + k * every`` (UTC, no DST):
the anchor defaults to the Unix epoch, so ``every=3600`` fires on the hour and every
worker computes the same ticks.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from duro.errors import InvalidArgumentError

__all__ = [
    "FIRE_HORIZON",
    "MAX_SPAN",
    "MAX_TICKS",
    "MAX_TIME",
    "MIN_EVERY",
    "OverlapPolicy",
    "ScheduleSpec",
    "known_zone",
    "tick_workflow_id",
]

MIN_EVERY = 0.001
"""Shortest interval, in seconds (a shorter one is a mistake, and its tick arithmetic
overflows)."""
MAX_SPAN = 100 * 366 * 86400.0
"""Longest interval (and catch-up window), in seconds: a century."""
MAX_TICKS = 50
"""Upcoming ticks a schedule lists at most (``GET /v1/schedules/{id}/ticks``, ``duro
schedules show --ticks``)."""
MAX_TIME = 1e11
"""Farthest anchor from the epoch, in seconds (year 5138): times stay datetimes."""

OverlapPolicy = Literal["skip", "buffer_one", "allow_all"]
"""What a tick does while the schedule's previous run is still live: ``skip`` it,
``buffer_one`` (start it when the live run ends; at most one tick waits), or
``allow_all`` (start it anyway)."""

OVERLAP_POLICIES: tuple[str, ...] = ("skip", "buffer_one", "allow_all")

_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                      "@hourly"})
_YEAR = 365.25 * 86400
FIRE_HORIZON = 5 * _YEAR
"""A cron expression must have a tick this soon (seconds) to be accepted; a leap day
(every four years) is the rarest date a 5-field expression can name."""
_SEARCH_LIMIT = 2000
"""Consecutive candidate wall-clock times that may be passed over (a DST gap or a
repeated hour costs a few) before giving up."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleSpec:
    """When a schedule fires: exactly one of ``cron`` or ``every``.

    Args:
        cron: A standard 5-field cron expression (minute hour day-of-month month
            day-of-week) or ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``.
        every: Seconds between ticks (a fixed interval).
        timezone: An IANA time zone (``Europe/Berlin``) for cron expressions.
        anchor: For intervals: a time (epoch seconds) that is a tick; ticks are
            ``anchor + k * every``.

    Raises:
        ValueError: Neither or both of ``cron``/``every``, a malformed cron expression,
            an unknown time zone, or a non-positive interval.
    """

    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    anchor: float = 0.0

    def __post_init__(self) -> None:
        if self.every is not None and not isinstance(self.every, bool):
            object.__setattr__(self, "every", float(self.every))
        object.__setattr__(self, "anchor", float(self.anchor))
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule needs exactly one of cron=... or every=...")
        if self.cron is not None:
            _check_cron(self.cron)
        if self.every is not None and not MIN_EVERY <= self.every <= MAX_SPAN:
            raise ValueError(f"every must be a positive number of seconds, {MIN_EVERY:g} to "
                             f"{MAX_SPAN:g}, not {self.every!r}")
        if not abs(self.anchor) <= MAX_TIME:
            raise ValueError(f"anchor must be a time within {MAX_TIME:g} seconds of the "
                             f"epoch, not {self.anchor!r}")
        _zone(self.timezone)

    def describe(self) -> str:
        """``cron '0 9 * * 1-5' (Europe/Berlin)`` or ``every 30s``."""
        if self.cron is not None:
            return f"cron {self.cron!r} ({self.timezone})"
        assert self.every is not None
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if self.every >= size and self.every % size == 0:
                return f"every {self.every / size:g}{unit}"
        return f"every {self.every:g}s"

    def check_fires(self, now: float) -> None:
        """Refuse a cron expression that has no tick within :data:`FIRE_HORIZON` of
        ``now``: ``0 0 30 2 *`` is well-formed, but February has no 30th, and such a
        schedule would sit in the database forever without a run.

        Raises:
            InvalidArgumentError: No tick within the horizon.
        """
        if self.cron is None:
            return
        tick = self.next_after(now)
        if tick is None or tick - now > FIRE_HORIZON:
            raise InvalidArgumentError(
                f"cron expression {self.cron!r} never fires: it matches no time in the "
                f"next {FIRE_HORIZON / _YEAR:g} years in {self.timezone} (a day the month "
                "does not have, such as the 30th of February?)")

    def upcoming(self, first: float, count: int) -> list[float]:
        """``first`` (a pending tick) and the ticks after it: ``count`` at most, none
        past :data:`MAX_TIME`."""
        ticks = [first]
        for tick in self.iter_after(first):
            if len(ticks) >= count or tick > MAX_TIME:
                break
            ticks.append(tick)
        return ticks[:count]

    def next_after(self, t: float) -> float | None:
        """The first tick strictly after ``t`` (epoch seconds); None if there is none."""
        return next(self.iter_after(t), None)

    def iter_after(self, t: float) -> Iterator[float]:
        """The ticks strictly after ``t``, in order (endless, unless the expression
        stops matching)."""
        if self.every is not None:
            every = self.every
            k = math.floor((t - self.anchor) / every) + 1
            while self.anchor + k * every <= t:  # float rounding
                k += 1
            while True:
                yield self.anchor + k * every
                k += 1
        assert self.cron is not None
        cron = _croniter()
        zone = _zone(self.timezone)
        wall = dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None)
        candidates = cron.croniter(self.cron, wall)
        last = t
        misses = 0
        while misses < _SEARCH_LIMIT:
            try:
                naive: dt.datetime = candidates.get_next(dt.datetime)
            except cron.CroniterError:
                return  # the expression never matches again
            local = naive.replace(tzinfo=zone)  # fold=0: the first of a repeated time
            tick = local.timestamp()
            if not _exists(local, zone) or tick <= last:
                # In a DST gap (that wall-clock time never happens that day), or a
                # repeated wall-clock time whose first occurrence is behind us.
                misses += 1
                continue
            misses = 0
            last = tick
            yield tick

    def first_at_or_after(self, t: float) -> float | None:
        """The first tick at ``t`` or later."""
        return next(self._from(t), None)

    def _from(self, t: float) -> Iterator[float]:
        return (tick for tick in self.iter_after(t - 1.0) if tick >= t)

    def ticks(self, start: float, end: float, *, limit: int) -> list[float]:
        """The ticks in ``[start, end]``, in order.

        Raises:
            ValueError: More than ``limit`` ticks.
        """
        out: list[float] = []
        for tick in self._from(start):
            if tick > end:
                break
            if len(out) >= limit:
                raise ValueError(f"more than {limit} ticks between the two times")
            out.append(tick)
        return out

    def skip_before(self, start: float, horizon: float, *,
                    limit: int = 10_000) -> tuple[int, float | None]:
        """Count the ticks in ``[start, horizon)`` and return ``(count, first tick at or
        after horizon)``. Cron ticks are counted up to ``limit`` (past it the count is a
        lower bound and the rest is skipped without counting)."""
        if self.every is not None:
            first = self.first_at_or_after(start)
            nxt = self.first_at_or_after(horizon)
            if first is None or nxt is None or first >= horizon:
                return 0, nxt
            return round((nxt - first) / self.every), nxt
        count = 0
        for tick in self._from(start):
            if tick >= horizon:
                return count, tick
            count += 1
            if count >= limit:
                return count, self.first_at_or_after(horizon)
        return count, None


def tick_workflow_id(schedule_id: str, tick: float) -> str:
    """The workflow id of a schedule's run for one tick: ``<schedule>@<UTC ISO time>``.

    Every worker derives the same id, so the run's workflow id (unique among runs of
    the schedule's ticks) is the backstop of exactly-once firing.
    """
    when = dt.datetime.fromtimestamp(tick, dt.UTC)
    spec = "seconds" if when.microsecond == 0 else "microseconds"
    return f"{schedule_id}@{when.replace(tzinfo=None).isoformat(timespec=spec)}Z"


def known_zone(name: str) -> ZoneInfo | None:
    """The time zone of that IANA name, or None when this machine does not know it (its
    tz database is older than the one of the machine that stored the schedule): a
    schedule must still be listed, its times shown in UTC."""
    try:
        return _zone(name)
    except ValueError:
        return None


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ValueError(f"timezone must be an IANA time zone name, not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} ({exc}); use an IANA name such as "
                         "'UTC' or 'Europe/Berlin'") from None


def _croniter() -> Any:
    # Imported when first needed: `import duro` stays light.
    import croniter  # type: ignore[import-untyped]

    return croniter


def _check_cron(expr: str) -> None:
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError(f"cron must be a cron expression string, not {expr!r}")
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in _ALIASES:
            raise ValueError(f"unknown cron alias {expr!r} (known: "
                             f"{', '.join(sorted(_ALIASES))})")
        return
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {expr!r} has {len(fields)} fields; duro takes the standard 5 "
            "(minute hour day-of-month month day-of-week); for sub-minute periods use "
            "every=SECONDS")
    if not _croniter().croniter.is_valid(text):
        raise ValueError(f"malformed cron expression {expr!r}")


def _exists(local: dt.datetime, zone: ZoneInfo) -> bool:
    """Whether a wall-clock time happens in its zone (False inside a DST gap)."""
    back = local.astimezone(dt.UTC).astimezone(zone)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)
