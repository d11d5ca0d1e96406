"""Payloads: dictionary keys that are not strings come back as the hinted key type, keys
that cannot come back are refused when encoding, and a payload of the wrong shape is a
``PayloadDecodeError`` (never an ``AttributeError`` escaping from the worker)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from duro.errors import PayloadDecodeError, SerializationError
from duro.serde import decode, encode


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Color(enum.Enum):
    RED = "red"


@dataclass(frozen=True, kw_only=True)
class Holder:
    scores: dict[int, float]


@pytest.mark.parametrize("value, hint", [
    ({1: "a", -2: "b"}, dict[int, str]),
    ({1.5: "a", 2.0: "b"}, dict[float, str]),
    ({True: 1, False: 0}, dict[bool, int]),
    ({Level.HIGH: "h"}, dict[Level, str]),
    ({Color.RED: 1}, dict[Color, int]),
    ({uuid.UUID(int=3): 1}, dict[uuid.UUID, int]),
    ({dt.date(2024, 2, 29): 1}, dict[dt.date, int]),
    ({dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC): 1}, dict[dt.datetime, int]),
    ({1: {2: [3]}}, dict[int, dict[int, list[int]]]),
    ([{1: "a"}, {2: "b"}], list[dict[int, str]]),
    (Holder(scores={7: 0.5}), Holder),
    ({1: "a"}, dict[int, str] | None),
])
def test_non_string_keys_round_trip_by_the_hint(value: Any, hint: Any) -> None:
    back = decode(encode(value), hint)
    assert back == value
    assert repr(back) == repr(value)  # the same key types, not just equal values


def test_keys_without_a_key_type_stay_json_strings() -> None:
    assert decode(encode({1: "a"}), dict) == {"1": "a"}
    assert decode(encode({1: "a"}), dict[Any, str]) == {"1": "a"}
    assert decode(encode({1: "a"}), Any) == {"1": "a"}


@pytest.mark.parametrize("value", [
    {1: "a", "1": "b"},
    {True: "a", "true": "b"},
    {"outer": [{2: "x", "2": "y"}]},
], ids=repr)
def test_keys_that_collide_in_json_are_refused(value: Any) -> None:
    with pytest.raises(SerializationError, match="same key"):
        encode(value, what="the test value")


def test_keys_json_cannot_carry_are_refused() -> None:
    with pytest.raises(SerializationError, match="dictionary keys"):
        encode({(1, 2): "a"})


@pytest.mark.parametrize("data, hint", [
    (b"[1]", dict[int, str]),
    (b'{"a": 1}', list[int]),
    (b'"text"', list[str]),
    (b"[1, 2]", Holder),
    (b'{"x": "a"}', dict[int, str]),
    (b'{"9": "a"}', dict[Level, str]),
    (b"5", tuple[int, int]),
], ids=repr)
def test_payloads_of_the_wrong_shape_are_decode_errors(data: bytes, hint: Any) -> None:
    with pytest.raises(PayloadDecodeError, match="does not fit"):
        decode(data, hint)


def test_string_keyed_payloads_take_the_fast_path_unchanged() -> None:
    assert encode({"a": 1, "b": [1, 2]}) == b'{"a":1,"b":[1,2]}'
    assert encode({1: "a"}) == b'{"1":"a"}'
