"""AES-256-GCM: round trips, fresh nonces, key rotation, tampering, key sources."""

from __future__ import annotations

import base64
import os

import pytest

from duro import PayloadDecodeError
from duro.errors import CodecConfigError, PayloadTamperedError, UnknownKeyError
from duro.serde import (
    AesGcmCodec,
    CodecChain,
    Payload,
    from_stored,
    generate_key,
    parse_keys,
    to_stored,
)
from tests.conftest import run

K1, K2 = os.urandom(32), os.urandom(32)
SECRET = b'{"card":"4111-1111-1111-1111","note":"the secret"}'


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def encrypt(codec: AesGcmCodec, data: bytes = SECRET) -> Payload:
    return run(codec.encode([Payload(data=data)]))[0]


def decrypt(codec: AesGcmCodec, payload: Payload) -> Payload:
    return run(codec.decode([payload]))[0]


def test_round_trip_hides_the_plaintext_and_names_the_key() -> None:
    codec = AesGcmCodec({"k1": K1}, current_key_id="k1")
    sealed = encrypt(codec)
    assert dict(sealed.metadata) == {"encoding": "duro/aes-gcm", "key-id": "k1"}
    assert b"secret" not in to_stored(sealed) and b"4111" not in to_stored(sealed)
    assert len(sealed.data) == 12 + len(SECRET) + 16
    assert decrypt(codec, sealed) == Payload(data=SECRET)


def test_inner_metadata_is_encrypted_and_restored() -> None:
    codec = AesGcmCodec({"k1": K1}, current_key_id="k1")
    inner = Payload(data=b"\x00\x01", metadata={"encoding": "binary/plain", "who": "alice"})
    sealed = run(codec.encode([inner]))[0]
    assert b"alice" not in to_stored(sealed)
    assert decrypt(codec, sealed) == inner


def test_every_payload_gets_a_fresh_nonce() -> None:
    codec = AesGcmCodec({"k1": K1}, current_key_id="k1")
    sealed = run(codec.encode([Payload(data=SECRET)] * 200))
    assert len({p.data[:12] for p in sealed}) == 200
    assert len({p.data for p in sealed}) == 200


def test_nonces_stay_unique_across_batches_and_a_fork() -> None:
    codec = AesGcmCodec({"k1": K1}, current_key_id="k1")
    before = {p.data[:12] for p in run(codec.encode([Payload(data=SECRET)] * 3))}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child draws from the pool it inherited, unless dropped at fork
        os.close(read)
        nonces = b"".join(p.data[:12] for p in run(codec.encode([Payload(data=SECRET)] * 5)))
        os.write(write, nonces)
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        raw = pipe.read()
    child = {raw[i:i + 12] for i in range(0, len(raw), 12)}
    parent = {p.data[:12] for p in run(codec.encode([Payload(data=SECRET)] * 1100))}
    assert len(child) == 5 and len(parent) == 1100  # 1100 spans two refills of 512
    assert not (child & parent) and not (child & before) and not (parent & before)


def test_rotation_old_payloads_decrypt_new_ones_use_the_current_key() -> None:
    old = encrypt(AesGcmCodec({"k1": K1}, current_key_id="k1"))
    rotated = AesGcmCodec({"k1": K1, "k2": K2}, current_key_id="k2")
    assert decrypt(rotated, old).data == SECRET
    new = encrypt(rotated)
    assert new.metadata["key-id"] == "k2"
    only_k2 = AesGcmCodec({"k2": K2}, current_key_id="k2")
    assert decrypt(only_k2, new).data == SECRET
    with pytest.raises(UnknownKeyError, match="'k1'") as caught:
        decrypt(only_k2, old)
    assert caught.value.key_id == "k1"
    assert isinstance(caught.value, PayloadDecodeError)  # parks the run, never fails it


@pytest.mark.parametrize("where", [0, 11, 12, 20, -16, -1])  # nonce, ciphertext, tag
def test_a_flipped_byte_is_a_tampering_error(where: int) -> None:
    codec = AesGcmCodec({"k1": K1}, current_key_id="k1")
    sealed = encrypt(codec)
    data = bytearray(sealed.data)
    data[where] ^= 0x01
    with pytest.raises(PayloadTamperedError, match="failed authentication") as caught:
        decrypt(codec, Payload(data=bytes(data), metadata=sealed.metadata))
    assert caught.value.key_id == "k1"


def test_tampering_in_the_stored_bytes_is_caught_by_the_chain() -> None:
    chain = CodecChain([AesGcmCodec({"k1": K1}, current_key_id="k1")])
    stored = run(chain.encode_stored([SECRET]))[0]
    assert stored is not None
    broken = stored[:-5] + bytes([stored[-5] ^ 0x80]) + stored[-4:]
    with pytest.raises(PayloadTamperedError):
        run(chain.decode_stored([broken]))


def test_the_key_id_is_bound_to_the_ciphertext() -> None:
    codec = AesGcmCodec({"k1": K1, "k2": K1}, current_key_id="k1")  # same key, two ids
    sealed = encrypt(codec)
    relabelled = Payload(data=sealed.data, metadata={**sealed.metadata, "key-id": "k2"})
    with pytest.raises(PayloadTamperedError):
        decrypt(codec, relabelled)


def test_truncated_ciphertext_is_a_tampering_error() -> None:
    codec = AesGcmCodec({"k1": K1}, current_key_id="k1")
    with pytest.raises(PayloadTamperedError, match="truncated"):
        decrypt(codec, Payload(data=b"short", metadata={"encoding": "duro/aes-gcm",
                                                        "key-id": "k1"}))


def test_callable_key_source_is_asked_once_per_key_id() -> None:
    asked: list[str] = []

    def kms(key_id: str) -> bytes | None:
        asked.append(key_id)
        return {"k1": K1, "k2": K2}.get(key_id)

    codec = AesGcmCodec(kms, current_key_id="k1")
    sealed = run(codec.encode([Payload(data=SECRET)] * 3))
    assert run(codec.decode(sealed))[2].data == SECRET
    assert asked == ["k1"]
    other = encrypt(AesGcmCodec({"k2": K2}, current_key_id="k2"))
    assert decrypt(codec, other).data == SECRET
    assert asked == ["k1", "k2"]
    with pytest.raises(UnknownKeyError, match="'k9'"):
        decrypt(codec, Payload(data=other.data, metadata={**other.metadata, "key-id": "k9"}))
    assert asked == ["k1", "k2", "k9"]


def test_async_key_source() -> None:
    async def kms(key_id: str) -> bytes | None:
        return K2 if key_id == "k2" else None

    codec = AesGcmCodec(kms, current_key_id="k2")
    assert decrypt(codec, encrypt(codec)).data == SECRET
    missing = AesGcmCodec(kms, current_key_id="nope")
    with pytest.raises(CodecConfigError, match="'nope'"):
        encrypt(missing)


@pytest.mark.parametrize("keys, current, fragment", [
    ({"k1": os.urandom(16)}, "k1", "must be 32 bytes, got 16 bytes"),
    ({"k1": "not bytes"}, "k1", "must be 32 bytes, got str"),
    ({"k1": K1}, "k2", "not among the keys"),
    ({"bad id": K1}, "bad id", "must be 1-64 characters"),
    ({"k1": K1}, "", "must be 1-64 characters"),
])
def test_bad_keys_are_refused_at_construction(keys: dict[str, bytes], current: str,
                                              fragment: str) -> None:
    with pytest.raises(CodecConfigError, match=fragment):
        AesGcmCodec(keys, current_key_id=current)


def test_keys_from_the_environment() -> None:
    env = {"DURO_KEYS": f" k1:{b64(K1)} , k2:{b64(K2)} ", "DURO_KEY_ID": "k2"}
    codec = AesGcmCodec.from_env(env)
    assert codec.current_key_id == "k2"
    sealed = encrypt(codec)
    assert decrypt(AesGcmCodec({"k2": K2}, current_key_id="k2"), sealed).data == SECRET
    alone = AesGcmCodec.from_env({"DURO_KEYS": f"only:{b64(K1)}"})
    assert alone.current_key_id == "only"
    urlsafe = base64.urlsafe_b64encode(K1).decode()
    assert parse_keys(f"k:{urlsafe}") == {"k": K1}


def test_keys_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURO_KEYS", f"env1:{b64(K1)}")
    monkeypatch.delenv("DURO_KEY_ID", raising=False)
    assert AesGcmCodec.from_env().current_key_id == "env1"


@pytest.mark.parametrize("env, fragment", [
    ({}, "DURO_KEYS is empty"),
    ({"DURO_KEYS": " , "}, "DURO_KEYS is empty"),
    ({"DURO_KEYS": f"k1{b64(K1)}"}, "entry 1 is not"),
    ({"DURO_KEYS": f"k1:{b64(K1)},k1:{b64(K2)}"}, "twice"),
    ({"DURO_KEYS": "k1:%%%notbase64"}, "not valid base64"),
    ({"DURO_KEYS": f"k1:{b64(K1[:31])}"}, "is 31 bytes"),
    ({"DURO_KEYS": f"k1:{b64(K1)},k2:{b64(K2)}"}, "DURO_KEY_ID must name"),
    ({"DURO_KEYS": f"k1:{b64(K1)}", "DURO_KEY_ID": "k2"}, "not among the keys"),
])
def test_malformed_environment_is_refused_without_showing_keys(
        env: dict[str, str], fragment: str) -> None:
    with pytest.raises(CodecConfigError, match=fragment) as caught:
        AesGcmCodec.from_env(env)
    assert b64(K1) not in str(caught.value) and b64(K2) not in str(caught.value)


def test_generate_key_gives_a_usable_256_bit_key() -> None:
    text = generate_key()
    assert len(base64.b64decode(text)) == 32
    assert text != generate_key()
    codec = AesGcmCodec.from_env({"DURO_KEYS": f"gen:{text}"})
    assert decrypt(codec, encrypt(codec)) == from_stored(SECRET)
