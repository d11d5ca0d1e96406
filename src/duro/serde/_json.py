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
import json
import types
import typing
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson

from duro.errors import PayloadDecodeError, SerializationError
from duro.serde._finite import find_non_finite

__all__ = ["convert", "decode", "encode", "hints_of"]



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

    Dictionary keys that are not strings (int, float, bool, None, datetime, date, time,
    UUID, Enum) are written as JSON strings and come back as the type hints' key types
    (:func:`convert`). Keys that would become the same string (``1`` and ``"1"``) are
    refused: one of the values would be lost.

    A float that is NaN or infinite is refused (JSON has neither; orjson would write
    ``null``, which would come back as ``None``).

    Raises:
        SerializationError: The value (or something inside it) cannot be encoded.
    """
    try:
        data = orjson.dumps(value, default=_default)
    except (TypeError, orjson.JSONEncodeError):
        data = _encode_non_str_keys(value, what)  # maybe; or a clear error
    if b"null" in data:  # only then can a NaN be hiding (see _finite)
        _refuse_non_finite(value, what)
    return data


def _refuse_non_finite(value: Any, what: str) -> None:
    found = find_non_finite(value)
    if found is not None:
        path, number = found
        where = f"{path} is {number!r}" if path else f"it is {number!r}"
        raise SerializationError(
            f"cannot serialize {what}: {where}, and JSON has no NaN or Infinity (it would "
            "be stored as null); pass None, a string or a Decimal instead")


def _encode_non_str_keys(value: Any, what: str) -> bytes:
    """The rare, slower path of :func:`encode`: keys that are not strings."""
    try:
        data = orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise SerializationError(
            f"cannot serialize {what}: {exc}. duro stores payloads as JSON: use "
            "JSON types, dataclasses, pydantic models, datetime, UUID, Enum or bytes "
            "(dictionary keys: str, int, float, bool, datetime, date, UUID or Enum)"
        ) from None
    _check_unique_keys(data, what)
    return data


def _check_unique_keys(data: bytes, what: str) -> None:
    """Refuse JSON in which an object has a key twice: keys of different types that
    were written as the same string (orjson does not check; a reader keeps one)."""

    def pairs(items: list[tuple[str, Any]]) -> None:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise SerializationError(
                    f"cannot serialize {what}: two keys of one dictionary both become the "
                    f"same key {key!r} in JSON (such as 1 and '1'), and one value would "
                    "be lost")
            seen.add(key)

    json.loads(data, object_pairs_hook=pairs)


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
        items = [convert(v, item) for v in _expect(value, list, hint)]
        return origin(items) if origin in (set, frozenset) else items
    if origin is tuple:
        value = _expect(value, list, hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0]) for v in value)
        return tuple(convert(v, a) for v, a in zip(value, args, strict=False))
    if origin in (dict, typing.Dict) or origin is _abc_map():  # noqa: UP006
        kt, vt = ((*args, Any, Any))[:2] if args else (Any, Any)
        return {_convert_key(k, kt): convert(v, vt)
                for k, v in _expect(value, dict, hint).items()}
    return value


def _expect(value: Any, kind: type, hint: Any) -> Any:
    """``value`` if JSON gave the kind of container ``hint`` is made from."""
    if not isinstance(value, kind):
        raise TypeError(f"expected {_name(hint)}, got {type(value).__qualname__}")
    return value


def _convert_key(key: str, hint: Any) -> Any:
    """A JSON object key back to the key type of the hint.

    ``encode`` writes int, float, bool and None keys as their JSON text (``"1"``,
    ``"true"``) and datetime, UUID, Enum... keys as the string they serialize to. Keys of
    ``Any`` (or untyped dicts) stay strings: JSON cannot say what they were.
    """
    if hint is str or hint is Any:
        return key
    try:
        return convert(key, hint)  # datetime, UUID, str-valued Enum...
    except (TypeError, ValueError, KeyError):
        pass
    try:
        literal = orjson.loads(key)  # int, float, bool, None, int-valued Enum
    except orjson.JSONDecodeError:
        raise TypeError(f"key {key!r} is not a {_name(hint)}") from None
    return convert(literal, hint)


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
        if hint is object:  # anything, None included (as Any)
            return None
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
        return hint(**{k: convert(v, fields.get(k, Any))
                       for k, v in _expect(value, dict, hint).items() if k in fields})
    validate = getattr(hint, "model_validate", None)
    if callable(validate):  # pydantic v2 model
        return validate(value)
    if hint in (list, dict, tuple, set, frozenset):
        return hint(value)
    return value
