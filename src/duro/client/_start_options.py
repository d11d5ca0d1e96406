"""What a start is made of, checked: where and when the run waits (``_placement``), a
workflow known by name only (``_Named``), the message a signal- or update-with-start
carries (``_with_headers``). Parts of :class:`~duro.Client`, by concern."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from duro._checks import check_choice, check_count, check_seconds
from duro._clock import Clock
from duro._history import SignalMeta
from duro._messages import MessageKind
from duro._queues import Queue, queue_name
from duro.errors import InvalidArgumentError
from duro.serde import encode
from duro.store import Message
from duro.store._records import Placement

__all__ = ["LONGEST", "ON_CONFLICT", "ON_REUSE", "Named", "bounded", "placement",
           "with_headers"]

LONGEST = 1e10
"""Seconds a start's delay, debounce or execution timeout may be at most (about 317
years): a time further off cannot be shown as a date, and a run stored with one would
break every listing that reads it."""
_PRIORITY = 2**31 - 1
"""Priorities are 32-bit integers in the store (PostgreSQL's ``integer``)."""
ON_CONFLICT = ("use_existing", "fail")
ON_REUSE = ("use_existing", "allow", "allow_failed", "fail")
_ON_DEDUP = ("use_existing", "fail")


def placement(
    clock: Clock, *, queue: str | Queue | None, priority: int, concurrency_key: str | None,
    dedup_key: str | None, on_dedup: str, start_at: datetime | None,
    start_delay: float | timedelta | None, debounce_key: str | None,
    debounce: float | timedelta | None,
) -> Placement:
    """Where and when a new run waits, from :meth:`Client.start`'s options, checked.

    Raises:
        InvalidArgumentError: An option is refused (see ``Client.start``).
    """
    if queue is not None:
        queue = queue_name(queue)
    check_count(priority, "priority", minimum=-_PRIORITY - 1, maximum=_PRIORITY)
    check_choice(on_dedup, "on_dedup", _ON_DEDUP)
    when = None
    if start_at is not None:
        if start_delay is not None:
            raise InvalidArgumentError("pass start_at or start_delay, not both")
        if not isinstance(start_at, datetime) or start_at.tzinfo is None:
            raise InvalidArgumentError("start_at must be a timezone-aware datetime (e.g. "
                                       "datetime.now(UTC))")
        when = start_at.timestamp()
    delay = bounded(check_seconds(start_delay, "start_delay", zero=True), "start_delay")
    if delay is not None:
        when = clock.now() + delay
    period = bounded(check_seconds(debounce, "debounce"), "debounce")
    if (debounce_key is None) != (period is None):
        raise InvalidArgumentError("debounce_key and debounce go together: starts with the "
                                   "same key collapse after a quiet period of debounce "
                                   "seconds")
    return Placement(queue=queue or "", priority=priority, concurrency_key=concurrency_key,
                     dedup_key=dedup_key, on_dedup=on_dedup, debounce_key=debounce_key,
                     debounce=period or 0.0, start_at=when)


def bounded(seconds: float | None, what: str) -> float | None:
    """``seconds`` if at most :data:`LONGEST`.

    Raises:
        InvalidArgumentError: Longer.
    """
    if seconds is not None and seconds > LONGEST:
        raise InvalidArgumentError(f"{what} must be at most {LONGEST:g} seconds (about 300 "
                                   f"years), not {seconds:g}")
    return seconds


class Named:
    """A workflow known by name only (its code is not imported here): its arguments are
    stored as given, unchecked; it runs on its queue's default unless told."""

    queue = "default"
    return_hint: Any = Any

    def __init__(self, name: str) -> None:
        self.name = name

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any], *,
                        what: str) -> None:
        pass  # the signature is not known here

    def encode_input(self, args: Sequence[Any], kwargs: Mapping[str, Any], *,
                     what: str) -> bytes:
        return encode({"args": list(args), "kwargs": dict(kwargs)}, what=what)


def with_headers(message: Message | None, headers: dict[str, str] | None) -> Message | None:
    """The message sent with a start, carrying the start's headers too."""
    if message is None or not headers:
        return message
    if message.kind == MessageKind.SIGNAL:
        return dataclasses.replace(message, meta=SignalMeta(headers=headers,
                                                            id=message.signal_id).encode())
    return Message.update_request(message.name, message.update_id or "", message.data,
                                  headers)
