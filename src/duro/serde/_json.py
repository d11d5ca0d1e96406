"""JSON payloads, decoded by the type hints of the function that receives them.

JSON (never pickle) keeps the store from being a code-execution vector. orjson does
the byte work; :func:`convert` rebuilds rich types (dataclasses, pydantic models,
datetime, UUID, Enum, bytes, containers) from the plain JSON values.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import types
import typing
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson

from duro.errors import PayloadDecodeError, SerializationError

__all__ = ["convert", "decode", "encode", "hints_of"]

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 model
        return dump(mode="json")
    raise TypeError(f"{type(value).__qualname__} is not JSON-serializable")


def encode(value: Any, *, what: str = "value") -> bytes:
    """Encode a value as a JSON payload.

    Raises:
        SerializationError: The value (or something inside it) cannot be encoded.
    """
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise SerializationError(
            f"cannot serialize {what}: {exc}. duro stores payloads as JSON: use "
            "JSON types, dataclasses, pydantic models, datetime, UUID, Enum or bytes"
        ) from None


def decode(data: bytes | str | None, hint: Any = Any, *,
           what: str | Callable[[], str] = "payload") -> Any:
    """Decode a JSON payload and convert it to ``hint``.

    ``what`` names the payload in errors; a callable is only called on an error (replay
    decodes every step result, and formatting each one's name would be wasted).

    Raises:
        PayloadDecodeError: The bytes are not valid JSON or do not fit the hint.
    """
    if data is None:
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        what = what() if callable(what) else what
        raise PayloadDecodeError(f"corrupt {what}: not valid JSON ({exc})") from None
    try:
        return convert(value, hint)
    except (TypeError, ValueError, KeyError) as exc:
        what = what() if callable(what) else what
        raise PayloadDecodeError(f"{what} does not fit type {_name(hint)}: {exc}") from None


def _name(hint: Any) -> str:
    return getattr(hint, "__qualname__", None) or repr(hint)


@lru_cache(maxsize=1024)
def _dataclass_hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def hints_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved type hints of a function, ``Any`` where they cannot be resolved."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return dict.fromkeys(getattr(fn, "__annotations__", {}), Any)


def convert(value: Any, hint: Any) -> Any:
    """Convert a plain JSON value to the type ``hint`` names."""
    if hint is Any or (hint is None and value is None) or hint is typing.Any:
        return value
    if hint is type(None):
        return None
    if type(hint) is type and hint is not typing.Generic:
        # A plain class (int, str, a dataclass...) has no origin: skip get_origin, which
        # is a good part of the cost of decoding a small result.
        return _convert_plain(value, hint)
    origin = typing.get_origin(hint)
    if origin is None:
        return _convert_plain(value, hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        last: Exception | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(value, arg)
            except (TypeError, ValueError, KeyError) as exc:
                last = exc
        raise TypeError(f"{value!r} fits none of {hint}") from last
    if origin is typing.Literal:
        return value
    if origin is typing.Annotated:
        return convert(value, args[0])
    if origin in (list, typing.List, set, frozenset) or origin is _abc_seq():  # noqa: UP006
        item = args[0] if args else Any
        items = [convert(v, item) for v in value]
        return origin(items) if origin in (set, frozenset) else items
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0]) for v in value)
        return tuple(convert(v, a) for v, a in zip(value, args, strict=False))
    if origin in (dict, typing.Dict) or origin is _abc_map():  # noqa: UP006
        kt, vt = ((*args, Any, Any))[:2] if args else (Any, Any)
        return {convert(k, kt) if kt is not str else k: convert(v, vt) for k, v in value.items()}
    return value


def _abc_seq() -> Any:
    import collections.abc

    return collections.abc.Sequence


def _abc_map() -> Any:
    import collections.abc

    return collections.abc.Mapping


def _convert_plain(value: Any, hint: Any) -> Any:
    if not isinstance(hint, type):
        return value  # TypeVar, forward ref we could not resolve, NewType...
    if value is None:
        raise TypeError(f"got null where {hint.__qualname__} was expected")
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise TypeError(f"expected {hint.__qualname__}, got {type(value).__qualname__}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected int, got {type(value).__qualname__}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected float, got {type(value).__qualname__}")
        return float(value)
    if hint is bytes:
        return base64.b64decode(value)
    if issubclass(hint, enum.Enum):
        return hint(value)
    if hint is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if hint is dt.date:
        return dt.date.fromisoformat(value)
    if hint is dt.time:
        return dt.time.fromisoformat(value)
    if hint is dt.timedelta:
        return dt.timedelta(seconds=value)
    if hint is uuid.UUID:
        return uuid.UUID(value)
    if hint is Decimal:
        return Decimal(value)
    if dataclasses.is_dataclass(hint):
        fields = _dataclass_hints(hint)
        return hint(**{k: convert(v, fields.get(k, Any)) for k, v in value.items() if k in fields})
    validate = getattr(hint, "model_validate", None)
    if callable(validate):  # pydantic v2 model
        return validate(value)
    if hint in (list, dict, tuple, set, frozenset):
        return hint(value)
    return value
