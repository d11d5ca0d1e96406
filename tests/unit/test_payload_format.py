"""The stored form of payloads: plain JSON byte for byte, everything else an envelope."""

from __future__ import annotations

import orjson
import pytest

from duro import PayloadDecodeError, SerializationError
from duro.serde import JSON_METADATA, Payload, from_stored, is_envelope, to_stored

PLAIN = [b'{"a":1}', b"[1,2]", b"null", b'"text"', b"12.5", b" \n\t{}", b"\r\n[]", b"",
         b'"\\u0000 escaped NUL is still JSON"']


@pytest.mark.parametrize("stored", PLAIN)
def test_plain_json_is_stored_as_itself(stored: bytes) -> None:
    payload = from_stored(stored)
    assert payload.data is stored
    assert dict(payload.metadata) == {"encoding": "json"}
    assert to_stored(payload) is stored
    assert not is_envelope(stored)


def test_json_tagged_payload_with_own_dict_is_plain() -> None:
    data = b'{"x": 1}'
    assert to_stored(Payload(data=data, metadata={"encoding": "json"})) is data
    assert Payload(data=data).metadata is JSON_METADATA


def test_envelope_layout_is_pinned() -> None:
    payload = Payload(data=b"xyz", metadata={"encoding": "duro/test", "b": "2"})
    header = b'{"b":"2","encoding":"duro/test"}'
    expected = b"\x00duro\x01" + len(header).to_bytes(2, "big") + header + b"xyz"
    assert to_stored(payload) == expected
    assert from_stored(expected) == payload


@pytest.mark.parametrize("payload", [
    Payload(data=b"", metadata={"encoding": "binary/plain"}),
    Payload(data=b"\x00\x01\xff", metadata={"encoding": "binary/plain", "k": "v"}),
    Payload(data=b'{"a":1}', metadata={"encoding": "json", "extra": "marker"}),
    Payload(data=b"\x00duro\x01 looks like an envelope", metadata={"encoding": "json"}),
    Payload(data=b"\x00", metadata={"encoding": "json"}),
    Payload(data=b"x", metadata={"encoding": "é ☃", "ключ": "значение"}),
    Payload(data=b"x", metadata={}),
])
def test_everything_else_round_trips_through_an_envelope(payload: Payload) -> None:
    stored = to_stored(payload)
    assert is_envelope(stored)
    back = from_stored(stored)
    assert back == payload
    assert back.data == payload.data


@pytest.mark.parametrize("stored, fragment", [
    (b"\x00", "truncated"),
    (b"\x00duro", "truncated"),
    (b"\x00abcd\x01\x00\x02{}", "not with"),
    (b"\x00duro\x02\x00\x02{}", "version 2"),
    (b"\x00duro\x01\x00\x30{}", "header truncated"),
    (b"\x00duro\x01\x00\x02[]", "not an object of strings"),
    (b'\x00duro\x01\x00\x07{"a":1}', "not an object of strings"),
    (b"\x00duro\x01\x00\x03{x}", "corrupt payload envelope header"),
])
def test_malformed_envelopes_are_decode_errors(stored: bytes, fragment: str) -> None:
    with pytest.raises(PayloadDecodeError, match=fragment):
        from_stored(stored)


def test_metadata_too_large_for_a_header_is_refused() -> None:
    payload = Payload(data=b"", metadata={"encoding": "x", "big": "v" * 70_000})
    with pytest.raises(SerializationError, match="at most"):
        to_stored(payload)


def test_payload_is_frozen_and_keyword_only() -> None:
    payload = Payload(data=b"1")
    with pytest.raises(AttributeError):
        payload.data = b"2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Payload(b"1")  # type: ignore[misc]
    assert payload.encoding == "json"
    assert Payload(data=b"", metadata={}).encoding == ""


def test_json_never_starts_with_nul() -> None:
    # The rule the format rests on: orjson output (any value) starts with a printable byte.
    for value in [None, 0, -1, "", "\x00", [], {}, {"\x00": "\x00"}, 1.5, True]:
        assert orjson.dumps(value)[:1] != b"\x00"


def test_a_known_header_with_a_wrong_length_is_still_refused() -> None:
    good = to_stored(Payload(data=b"abc", metadata={"encoding": "duro/test-cached"}))
    assert from_stored(good).data == b"abc"  # the header is now cached
    header_size = int.from_bytes(good[6:8], "big")
    longer = good[:6] + (header_size + 10).to_bytes(2, "big") + good[8:8 + header_size]
    with pytest.raises(PayloadDecodeError, match="header truncated"):
        from_stored(longer)


def test_header_caches_stay_bounded_and_keep_codec_tags() -> None:
    from duro.serde import _payload

    tag = _payload.frozen_metadata({"encoding": "duro/test-pinned"})
    for i in range(3 * _payload._CACHE_MAX):  # distinct headers, like blob references
        stored = to_stored(Payload(data=b"", metadata={"encoding": "x", "n": str(i)}))
        assert from_stored(stored).metadata["n"] == str(i)
    assert len(_payload._HEADS) <= _payload._CACHE_MAX
    assert len(_payload._PARSED) <= _payload._CACHE_MAX
    assert _payload._HEADS[id(tag)][0] is tag  # still cached
    assert from_stored(to_stored(Payload(data=b"d", metadata=tag))).metadata == tag
