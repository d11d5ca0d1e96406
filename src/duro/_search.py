"""Search attributes and run listings, as callers give them: which attributes are
allowed, which listing filters, and the opaque cursor of a paged listing.

Everything here is checked at the call site and refused with
:class:`~duro.errors.InvalidArgumentError` before anything is stored or read. How the
store indexes and matches attributes is a store rule (``store/_rules.py``).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from duro._checks import check_choice, check_id, shown
from duro._history import SearchValue
from duro.errors import InvalidArgumentError
from duro.store._records import RunStatus

__all__ = ["MAX_ATTRIBUTES", "MAX_KEY_LENGTH", "MAX_VALUE_BYTES", "RunFilter",
           "check_search_attributes", "check_upsert", "decode_cursor", "encode_cursor",
           "epoch"]

MAX_KEY_LENGTH = 64
"""Longest attribute key, in characters."""
MAX_VALUE_BYTES = 1000
"""Longest string value, in bytes of UTF-8: values are keys of an index (PostgreSQL's
B-tree entries stop at ~2.7 KB)."""
MAX_ATTRIBUTES = 100
"""Most attributes one start or one upsert may set (each is a row of the index)."""
_INT64 = 2**63
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_STATUSES = tuple(s.value for s in RunStatus)
_CURSOR_VERSION = 1
_MAX_CURSOR = 2000
"""Longest cursor accepted, in characters (a run id is at most 1,000)."""
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        raise InvalidArgumentError(
            f"search attribute key {shown(key)} is refused: keys are identifiers (a letter "
            f"or _, then letters, digits, _ . -) of at most {MAX_KEY_LENGTH} characters")
    return key


def _check_value(key: str, value: object) -> SearchValue:
    """``value`` if a search attribute may hold it: a string, a 64-bit int, a finite
    float or a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return value
        why = "is out of the 64-bit integer range"
    elif isinstance(value, float):
        if math.isfinite(value):
            return value
        why = "is not a finite number"
    elif isinstance(value, str):
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            size = -1
        if 0 <= size <= MAX_VALUE_BYTES and "\x00" not in value:
            return value
        why = (f"is longer than {MAX_VALUE_BYTES} bytes of UTF-8" if size > MAX_VALUE_BYTES
               else "is not valid text (a NUL character or a lone surrogate)")
    else:
        why = "is not a str, int, float or bool"
    raise InvalidArgumentError(f"search attribute {key!r}: value {shown(value)} {why}")


def _checked(attributes: object) -> Iterator[tuple[str, SearchValue | None]]:
    """The (key, value) pairs of a mapping of search attributes, each checked (``None``
    values passed through for the caller to judge)."""
    if not isinstance(attributes, Mapping):
        raise InvalidArgumentError(f"search attributes must be a mapping of keys to values, "
                                   f"not {shown(attributes)}")
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidArgumentError(f"{len(attributes)} search attributes given at once; at "
                                   f"most {MAX_ATTRIBUTES} are allowed")
    for key, value in attributes.items():
        key = _check_key(key)
        yield key, None if value is None else _check_value(key, value)


def check_search_attributes(attributes: object) -> dict[str, SearchValue] | None:
    """A start's search attributes, checked and copied; None when there are none. A
    ``None`` value (nothing to remove yet) is left out.

    Raises:
        InvalidArgumentError: Not a mapping, more than :data:`MAX_ATTRIBUTES` keys, a key
            that is not an identifier of at most :data:`MAX_KEY_LENGTH` characters, or a
            value of another type (or a non-finite float, an int beyond 64 bits, a string
            over :data:`MAX_VALUE_BYTES` bytes); the message names the key.
    """
    if attributes is None:
        return None
    return {k: v for k, v in _checked(attributes) if v is not None} or None


def check_upsert(attributes: object) -> dict[str, SearchValue | None]:
    """An upsert's changes, checked and copied: a value sets its key, ``None`` removes
    it.

    Raises:
        InvalidArgumentError: As :func:`check_search_attributes`.
    """
    return dict(_checked(attributes))


def epoch(value: datetime | float | None, what: str) -> float | None:
    """A time as epoch seconds: a timezone-aware datetime or a number (as ``start_at``
    takes it); None stays None.

    Raises:
        InvalidArgumentError: A naive datetime, or not a finite number, or one outside
            the years 1 to 9999 (no datetime, hence no read model, can hold it).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidArgumentError(f"{what} must be a timezone-aware datetime (e.g. "
                                       "datetime.now(UTC)) or epoch seconds")
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value):
        if not _FIRST <= value <= _LAST:
            raise InvalidArgumentError(f"{what} must be epoch seconds within the years 1 to "
                                       f"9999, not {shown(value)}")
        return float(value)
    raise InvalidArgumentError(f"{what} must be a timezone-aware datetime or epoch seconds, "
                               f"not {shown(value)}")


_FIRST = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LAST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
"""Epoch seconds a datetime can hold in every time zone (a day of margin each side)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFilter:
    """Which runs a listing returns (every given condition holds), checked by
    :meth:`of`."""

    status: str | None = None
    name: str | None = None
    created_after: float | None = None
    """Created at or after this time (epoch seconds)."""
    created_before: float | None = None
    """Created strictly before this time."""
    id_prefix: str | None = None
    attributes: dict[str, SearchValue] = field(default_factory=dict)
    """Each key holds exactly this value (``12`` and ``12.0`` are one value; ``"12"``
    and ``True`` are others)."""

    @classmethod
    def of(cls, *, status: str | None = None, name: str | None = None,
           created_after: datetime | float | None = None,
           created_before: datetime | float | None = None, id_prefix: str | None = None,
           search_attributes: Mapping[str, SearchValue] | None = None) -> RunFilter:
        """The filter of a listing's arguments.

        Raises:
            InvalidArgumentError: An unknown status, an empty name or prefix, a time that
                is not a timezone-aware datetime or a finite number, or an attribute
                refused as :func:`check_search_attributes` refuses it (a ``None`` value
                too: a filter needs a value).
        """
        if status is not None:
            check_choice(status, "status", _STATUSES)
        if name is not None:
            check_id(name, "workflow name")
        if id_prefix is not None:
            check_id(id_prefix, "workflow id prefix")
        attributes: dict[str, SearchValue] = {}
        for key, value in _checked({} if search_attributes is None else search_attributes):
            if value is None:
                raise InvalidArgumentError(f"search attribute filter {key!r} needs a value "
                                           "(None matches nothing)")
            attributes[key] = value
        return cls(status=status, name=name,
                   created_after=epoch(created_after, "created_after"),
                   created_before=epoch(created_before, "created_before"),
                   id_prefix=id_prefix, attributes=attributes)

    def store_args(self) -> dict[str, Any]:
        """As :meth:`duro.store.ClientStore.list_runs` takes it."""
        return {"status": self.status, "name": self.name,
                "created_after": self.created_after, "created_before": self.created_before,
                "id_prefix": self.id_prefix, "attributes": self.attributes or None}


def encode_cursor(created_at: float, run_id: str) -> str:
    """The opaque cursor after a run: its place in the listing order (newest first, ties
    by run id, descending), as URL-safe base64 of a small versioned JSON array. A
    position, not a query: it may be used with other filters."""
    raw = orjson.dumps([_CURSOR_VERSION, created_at, run_id])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: object) -> tuple[float, str]:
    """The (created_at, run_id) a cursor continues after.

    Raises:
        InvalidArgumentError: Not a cursor that :func:`encode_cursor` made.
    """
    bad = InvalidArgumentError(f"malformed cursor {shown(cursor)}: pass the next_cursor of "
                               "an earlier page, as it was given")
    if not isinstance(cursor, str) or len(cursor) > _MAX_CURSOR \
            or not _BASE64URL.fullmatch(cursor):
        raise bad
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not (isinstance(raw, list) and len(raw) == 3 and type(raw[0]) is int
            and raw[0] == _CURSOR_VERSION
            and type(raw[1]) in (int, float) and math.isfinite(raw[1])
            and isinstance(raw[2], str) and raw[2]):
        raise bad
    return float(raw[1]), raw[2]
