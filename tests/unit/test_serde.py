"""Payload conversion: JSON by type hints."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from duro import PayloadDecodeError, SerializationError
from duro.serde import decode, encode


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Inner:
    when: dt.datetime
    tags: set[str]


@dataclass
class Outer:
    id: uuid.UUID
    color: Color
    inner: Inner
    blob: bytes
    maybe: int | None = None
    items: tuple[int, ...] = ()


class Model(pydantic.BaseModel):
    name: str
    at: dt.date


def roundtrip(value: Any, hint: Any) -> Any:
    return decode(encode(value), hint)


def test_rich_types_roundtrip_by_hint() -> None:
    value = Outer(id=uuid.uuid4(), color=Color.BLUE,
                  inner=Inner(when=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
                              tags={"a", "b"}),
                  blob=b"\x00\xffbytes", maybe=None, items=(1, 2))
    assert roundtrip(value, Outer) == value
    assert roundtrip([value], list[Outer]) == [value]
    assert roundtrip({"k": value}, dict[str, Outer]) == {"k": value}
    model = Model(name="x", at=dt.date(2024, 1, 2))
    assert roundtrip(model, Model) == model
    assert roundtrip(Decimal("1.10"), Decimal) == Decimal("1.10")
    assert roundtrip(dt.timedelta(seconds=90), dt.timedelta) == dt.timedelta(seconds=90)
    assert roundtrip(5, int | str) == 5
    assert roundtrip(None, int | None) is None


def test_without_hints_values_stay_plain_json() -> None:
    assert decode(encode({"a": [1, 2.5, None, True]})) == {"a": [1, 2.5, None, True]}
    assert decode(encode((1, 2))) == [1, 2]


def test_unserializable_values_raise_serialization_error() -> None:
    with pytest.raises(SerializationError, match="JSON"):
        encode(object())
    with pytest.raises(SerializationError):
        encode({"f": lambda: 1})


def test_corrupt_or_mistyped_payloads_raise_decode_error() -> None:
    with pytest.raises(PayloadDecodeError, match="corrupt"):
        decode(b"\xff{", int)
    with pytest.raises(PayloadDecodeError, match="does not fit"):
        decode(b'"text"', int)
    with pytest.raises(PayloadDecodeError):
        decode(b'{"id": "not-a-uuid"}', Outer)
