"""Checks of what callers pass in: ids, durations and counts, refused at the call site.

A refusal raises :class:`~duro.errors.InvalidArgumentError` naming the value and what is
allowed, before anything is stored. Each check is a few comparisons: ``Engine.start`` and
``execute_child`` run them on every call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from duro.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_NAMESPACE",
    "MAX_ID_LENGTH",
    "MAX_REASON",
    "check_choice",
    "check_count",
    "check_duration",
    "check_headers",
    "check_id",
    "check_namespace",
    "check_reason",
    "check_seconds",
    "parse_duration",
    "shown",
]

MAX_ID_LENGTH = 1000
"""Longest workflow (or update, schedule...) id, in characters: as Temporal's default
limit. Ids are keys of indexes and appear in every listing; longer ones are mistakes."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 controls, DEL and C1 controls: invisible, and terminal commands when printed."""


def shown(value: object, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters, for error messages (an id that is
    refused for being too long must not fill the screen)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def check_id(value: object, what: str = "workflow id", *, limit: int = MAX_ID_LENGTH) -> str:
    """``value`` if it is a usable id: a string with something visible in it, no control
    characters, at most ``limit`` characters.

    Raises:
        InvalidArgumentError: Otherwise (an empty id must not silently become a random
            one: the id is the idempotency key).
    """
    if not isinstance(value, str) or not value or value.isspace():
        raise InvalidArgumentError(f"{what} must be a non-empty string, not {shown(value)}")
    if len(value) > limit:
        raise InvalidArgumentError(f"{what} {shown(value)} is {len(value)} characters long; "
                                   f"at most {limit} are allowed")
    if _CONTROL.search(value):
        raise InvalidArgumentError(f"{what} {shown(value)} contains control characters")
    return value


DEFAULT_NAMESPACE = "default"
"""The namespace of a client that names none, and of every run and schedule stored before
namespaces existed."""

_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What a namespace name may be: safe unquoted in a URL path, a shell and a log line."""


MAX_REASON = 4096
"""Characters of a termination's reason at most (it is stored in the run's history)."""


def check_reason(value: object) -> str:
    """A termination's reason: text of at most :data:`MAX_REASON` characters, without
    NUL.

    Raises:
        InvalidArgumentError: Not text, too long, or with a NUL.
    """
    if not isinstance(value, str) or len(value) > MAX_REASON or "\x00" in value:
        raise InvalidArgumentError(f"reason must be text of at most {MAX_REASON} characters "
                                   f"without NUL, not {shown(value)}")
    return value


def check_namespace(value: object) -> str:
    """``value`` if it is a usable namespace name: 1 to 64 ASCII letters, digits, dots,
    underscores and hyphens, starting with a letter or digit (safe in URLs, paths and
    command lines: ``--namespace -x`` would read as an option).

    Raises:
        InvalidArgumentError: Otherwise (nothing is stored).
    """
    if not isinstance(value, str) or not _NAMESPACE.fullmatch(value):
        raise InvalidArgumentError(
            f"namespace must be 1 to 64 letters, digits, '.', '_' or '-' (ASCII), starting "
            f"with a letter or digit, not "
            f"{shown(value)}")
    return value


def check_seconds(value: float | timedelta | None, what: str, *,
                  zero: bool = False) -> float | None:
    """A duration in seconds from a number or a timedelta; None stays None.

    Raises:
        InvalidArgumentError: Not a number, not finite, negative, or zero unless ``zero``.
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise InvalidArgumentError(f"{what} must be seconds (a number) or a timedelta, "
                                   f"not {shown(value)}")
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        allowed = "zero or more" if zero else "more than zero"
        raise InvalidArgumentError(f"{what} must be a finite duration of {allowed} seconds, "
                                   f"not {shown(value)}")
    return number


def check_duration(value: float | timedelta, what: str, *, zero: bool = False) -> float:
    """As :func:`check_seconds`, for a duration that must be given (None is refused)."""
    number = check_seconds(value, what, zero=zero)
    if number is None:
        raise InvalidArgumentError(f"{what} must be seconds (a number) or a timedelta, "
                                   "not None")
    return number


def check_count(value: Any, what: str, *, minimum: int = 1,
                maximum: int | None = None) -> int:
    """``value`` if it is an int from ``minimum`` to ``maximum`` (inclusive).

    Raises:
        InvalidArgumentError: Otherwise.
    """
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        bound = f"of at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise InvalidArgumentError(f"{what} must be a whole number {bound}, not {shown(value)}")
    return value


def check_choice(value: Any, what: str, choices: tuple[str | None, ...]) -> None:
    """Refuse a policy name that is not one of ``choices`` (a typo would otherwise be
    read as some other policy).

    Raises:
        InvalidArgumentError: ``value`` is not one of ``choices``.
    """
    if value not in choices:
        raise InvalidArgumentError(f"{what} must be one of {', '.join(map(repr, choices))}, "
                                   f"not {shown(value)}")


MAX_HEADERS_SIZE = 16_384
"""Bytes of headers at most (keys and values together): context, not payload."""


def check_headers(headers: Any) -> dict[str, str] | None:
    """Headers as given to ``start``, ``signal``, ``update`` or ``query``: a map of
    non-empty string keys (no control characters, 256 characters at most) to string
    values, 16 KiB in all; None or empty: none.

    Raises:
        InvalidArgumentError: Anything else (nothing is stored).
    """
    if headers is None:
        return None
    if not isinstance(headers, dict | Mapping):
        raise InvalidArgumentError(
            f"headers must be a mapping of strings to strings, not {type(headers).__name__}")
    size = 0
    out: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgumentError(
                f"headers must map strings to strings: {key!r}: {value!r} does not")
        if not key.strip() or len(key) > 256 or _CONTROL.search(key):
            raise InvalidArgumentError(
                f"header name {key[:80]!r} must be 1 to 256 characters, without control "
                "characters")
        size += len(key.encode()) + len(value.encode())
        out[key] = value
    if size > MAX_HEADERS_SIZE:
        raise InvalidArgumentError(
            f"headers take {size} bytes, over {MAX_HEADERS_SIZE}: carry context in them "
            "(ids, names), not payloads")
    return out or None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """``90``, ``1.5``, ``30s``, ``5m``, ``1h30m``, ``2d`` → seconds (the CLI's
    ``--since``/``--every``, ``GET /v1/stats?since=7d``).

    Raises:
        InvalidArgumentError: Not such a duration, negative or not finite.
    """
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise InvalidArgumentError(f"not a duration: {shown(text)} (use seconds, or e.g. "
                                       "30s, 5m, 1h30m, 2d)") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 0 <= seconds < math.inf:
        raise InvalidArgumentError(f"not a duration: {shown(text)} (it must be zero or more, "
                                   "and finite)")
    return seconds
