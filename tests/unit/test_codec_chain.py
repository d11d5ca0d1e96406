"""The codec chain: order, old payloads under new chains, batching, the empty fast path;
zstd; loading a chain from a spec; optional packages imported lazily."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from duro import PayloadDecodeError
from duro.errors import CodecConfigError, CodecNotConfiguredError, CodecUnavailableError
from duro.serde import (
    AesGcmCodec,
    CodecChain,
    OffloadCodec,
    Payload,
    S3BlobStore,
    ZstdCodec,
    from_stored,
    load_codec_chain,
    to_stored,
)
from tests.conftest import run

KEYS = {"k1": os.urandom(32)}
BIG = orjson.dumps({"rows": [{"id": i, "name": f"row {i}", "ok": True} for i in range(200)]})
SMALL = b'{"x":1}'


def aes() -> AesGcmCodec:
    return AesGcmCodec(KEYS, current_key_id="k1")


class Counting:
    """A codec wrapper counting the calls and payloads it sees."""

    def __init__(self, inner: AesGcmCodec | ZstdCodec) -> None:
        self.inner = inner
        self.encoding = inner.encoding
        self.decode_calls: list[int] = []

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.inner.encode(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.decode_calls.append(len(payloads))
        return await self.inner.decode(payloads)


def stored_with(chain: CodecChain, *items: bytes) -> list[bytes]:
    out = run(chain.encode_stored(list(items)))
    assert all(item is not None for item in out)
    return [item for item in out if item is not None]


def test_empty_chain_returns_the_very_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parsing(stored: bytes) -> Payload:
        raise AssertionError("the empty chain parsed a payload")

    monkeypatch.setattr("duro.serde._codec.from_stored", no_parsing)  # the fast path
    chain = CodecChain()
    items: list[bytes | None] = [BIG, None, SMALL, b""]
    encoded = run(chain.encode_stored(items))
    assert encoded == items and all(a is b for a, b in zip(encoded, items, strict=True))
    decoded = run(chain.decode_stored(encoded))
    assert all(a is b for a, b in zip(decoded, items, strict=True))
    assert chain.empty and not CodecChain([aes()]).empty


def test_plain_json_is_passed_through_unparsed_by_any_chain() -> None:
    chain = CodecChain([ZstdCodec(), aes()])
    not_json = b"{this is not json"  # a reader never parses plain rows
    assert run(chain.decode_stored([not_json, None]))[0] is not_json


def test_encode_applies_codecs_in_order() -> None:
    zstd_then_aes = stored_with(CodecChain([ZstdCodec(), aes()]), BIG)[0]
    assert from_stored(zstd_then_aes).encoding == "duro/aes-gcm"
    inner = run(aes().decode([from_stored(zstd_then_aes)]))[0]
    assert inner.encoding == "duro/zstd"
    aes_then_zstd = stored_with(CodecChain([aes(), ZstdCodec()]), BIG)[0]
    # ciphertext does not compress: zstd leaves it alone, so compressing first is smaller
    assert from_stored(aes_then_zstd).encoding == "duro/aes-gcm"
    assert len(zstd_then_aes) < len(BIG) < len(aes_then_zstd)


@pytest.mark.parametrize("writer", [[], ["zstd"], ["aes"], ["zstd", "aes"], ["aes", "zstd"]])
@pytest.mark.parametrize("reader", [["zstd", "aes"], ["aes", "zstd"]])
def test_decoding_does_not_depend_on_the_chain_order(writer: list[str],
                                                     reader: list[str]) -> None:
    make = {"zstd": ZstdCodec, "aes": aes}
    written = stored_with(CodecChain([make[n]() for n in writer]), BIG, SMALL)
    assert run(CodecChain([make[n]() for n in reader]).decode_stored(written)) == [BIG, SMALL]


def test_payloads_of_older_chains_decode_in_one_batch() -> None:
    plain, zstd_only = BIG, stored_with(CodecChain([ZstdCodec()]), BIG)[0]
    aes_only = stored_with(CodecChain([aes()]), SMALL)[0]
    both = stored_with(CodecChain([ZstdCodec(), aes()]), BIG)[0]
    counted_aes, counted_zstd = Counting(aes()), Counting(ZstdCodec())
    chain = CodecChain([counted_zstd, counted_aes])
    decoded = run(chain.decode_stored([plain, zstd_only, None, aes_only, both] * 10))
    assert decoded == [BIG, BIG, None, SMALL, BIG] * 10
    assert counted_aes.decode_calls == [20]  # one call for the whole layer
    assert counted_zstd.decode_calls == [20]  # 10 zstd-only + 10 found under aes: one call
    reverse = CodecChain([counted_aes, counted_zstd])  # another order: another round
    assert run(reverse.decode_stored([both] * 5)) == [BIG] * 5
    assert counted_aes.decode_calls == [20, 5] and counted_zstd.decode_calls == [20, 5]


def test_a_codec_missing_from_the_chain_is_named() -> None:
    sealed = stored_with(CodecChain([aes()]), SMALL)[0]
    for chain in (CodecChain(), CodecChain([ZstdCodec()])):
        with pytest.raises(CodecNotConfiguredError, match="duro/aes-gcm") as caught:
            run(chain.decode_stored([sealed]))
        assert caught.value.encoding == "duro/aes-gcm"


def test_foreign_encodings_are_left_to_the_converter() -> None:
    raw = to_stored(Payload(data=b"\x01\x02", metadata={"encoding": "binary/plain"}))
    assert run(CodecChain([aes()]).decode_stored([raw])) == [raw]


def test_too_many_layers_are_refused() -> None:
    codec = aes()
    payloads = [Payload(data=SMALL)]
    for _ in range(17):
        payloads = run(codec.encode(payloads))
    with pytest.raises(PayloadDecodeError, match="more than 16 codec layers"):
        run(CodecChain([codec]).decode(payloads))
    for _ in range(2):
        payloads = run(codec.decode(payloads))
    assert run(CodecChain([codec]).decode(payloads)) == [Payload(data=SMALL)]


class NoAwaitZstd(ZstdCodec):
    """Fails if the chain awaits it: one small payload must take the inline path."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        raise AssertionError("awaited encode for one small payload")

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        raise AssertionError("awaited decode for one small payload")


def test_one_small_payload_takes_the_inline_path() -> None:
    chain = CodecChain([NoAwaitZstd(), aes()])
    stored = run(chain.encode_stored([BIG]))
    assert from_stored(only(stored)).encoding == "duro/aes-gcm"
    assert run(chain.decode_stored(stored)) == [BIG]


def test_big_payloads_and_key_fetches_take_the_async_path() -> None:
    fetched: list[str] = []

    async def kms(key_id: str) -> bytes | None:
        fetched.append(key_id)
        return KEYS.get(key_id)

    big = b'"' + os.urandom(1 << 20).hex().encode() + b'"'  # 2 MiB: a thread
    writer = CodecChain([ZstdCodec(), AesGcmCodec(kms, current_key_id="k1")])
    stored = run(writer.encode_stored([big])) + run(writer.encode_stored([SMALL]))
    assert fetched == ["k1"]
    reader = CodecChain([ZstdCodec(), AesGcmCodec(kms, current_key_id="k1")])
    assert run(reader.decode_stored(stored[:1])) == [big]
    assert run(reader.decode_stored(stored[1:])) == [SMALL]
    assert fetched == ["k1", "k1"]  # the reader fetched its key once


def only(items: list[bytes | None]) -> bytes:
    assert len(items) == 1 and items[0] is not None
    return items[0]


def test_chain_refuses_two_codecs_with_one_tag_and_non_codecs() -> None:
    with pytest.raises(CodecConfigError, match="duro/zstd"):
        CodecChain([ZstdCodec(), ZstdCodec(level=5)])
    with pytest.raises(CodecConfigError, match="not a payload codec"):
        CodecChain(["zstd"])  # type: ignore[list-item]
    with pytest.raises(CodecConfigError, match="not a payload codec"):
        CodecChain([ZstdCodec])  # type: ignore[list-item]  # the class, not a codec


# --- zstd -----------------------------------------------------------------------------

def test_zstd_compresses_above_the_threshold_only() -> None:
    codec = ZstdCodec(threshold=1024)
    big, small = run(codec.encode([Payload(data=BIG), Payload(data=b"[" + b"1," * 300 + b"1]")]))
    assert big.encoding == "duro/zstd" and len(to_stored(big)) < len(BIG) / 4
    assert small.encoding == "json"  # 603 bytes: under the threshold
    assert run(codec.decode([big])) == [Payload(data=BIG)]


def test_zstd_keeps_data_that_does_not_shrink() -> None:
    noise = Payload(data=os.urandom(4096), metadata={"encoding": "binary/plain"})
    assert run(ZstdCodec(threshold=0).encode([noise]))[0] is noise


def test_zstd_large_batches_round_trip_off_the_loop() -> None:
    payloads = [Payload(data=BIG * 200), Payload(data=BIG)]  # > 1 MiB: a thread
    codec = ZstdCodec()
    encoded = run(codec.encode(payloads))
    assert all(p.encoding == "duro/zstd" for p in encoded)
    assert run(codec.decode(encoded)) == payloads


def test_zstd_corrupt_frames_are_decode_errors() -> None:
    codec = ZstdCodec()
    frame = run(codec.encode([Payload(data=BIG)]))[0].data
    with pytest.raises(PayloadDecodeError, match="corrupt zstd"):
        run(codec.decode([Payload(data=b"garbage", metadata={"encoding": "duro/zstd"})]))
    cut = Payload(data=frame[: len(frame) // 2], metadata={"encoding": "duro/zstd"})
    with pytest.raises(PayloadDecodeError, match="corrupt zstd"):
        run(codec.decode([cut]))
    with pytest.raises(PayloadDecodeError, match="limit 100"):
        run(ZstdCodec(max_decoded_size=100).decode([Payload(data=frame,
                                                             metadata={"encoding": "duro/zstd"})]))


@pytest.mark.parametrize("options", [{"threshold": -1}, {"level": 0}, {"level": 99}])
def test_zstd_bad_options(options: dict[str, int]) -> None:
    with pytest.raises(CodecConfigError):
        ZstdCodec(**options)


def test_offload_threshold_must_be_positive() -> None:
    with pytest.raises(CodecConfigError):
        OffloadCodec(object(), threshold=-1)  # type: ignore[arg-type]


# --- loading a chain from a spec -----------------------------------------------------

FACTORIES = """
import os
from duro.serde import AesGcmCodec, CodecChain, ZstdCodec

KEYS = {"k1": bytes(32)}

def chain():
    return CodecChain([ZstdCodec(), AesGcmCodec(KEYS, current_key_id="k1")])

def codecs():
    return [ZstdCodec(), AesGcmCodec(KEYS, current_key_id="k1")]

def one():
    return ZstdCodec()

CHAIN = chain()

class Holder:
    @staticmethod
    def make():
        return chain()

def broken():
    raise RuntimeError("no key service")

def wrong():
    return 42

def mixed():
    return [ZstdCodec(), "aes"]
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"codec_factories_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.mark.parametrize("attr, count", [("chain", 2), ("codecs", 2), ("one", 1),
                                         ("CHAIN", 2), ("Holder.make", 2)])
def test_load_codec_chain(factories: str, attr: str, count: int) -> None:
    chain = load_codec_chain(f"{factories}:{attr}")
    assert len(chain.codecs) == count
    assert run(chain.decode_stored(run(chain.encode_stored([BIG])))) == [BIG]


@pytest.mark.parametrize("attr, fragment", [
    ("", "must be 'module:factory'"),
    ("missing", "'missing' not found"),
    ("Holder.nothing", "'nothing' not found"),
    ("broken", "factory raised RuntimeError: no key service"),
    ("wrong", "gave int"),
    ("KEYS", "gave dict"),
    ("mixed", "'aes' is not a payload codec"),
])
def test_load_codec_chain_errors(factories: str, attr: str, fragment: str) -> None:
    with pytest.raises(CodecConfigError, match=fragment):
        load_codec_chain(f"{factories}:{attr}")


def test_load_codec_chain_calls_a_codec_class() -> None:
    chain = load_codec_chain("duro.serde:ZstdCodec")
    assert [type(c) for c in chain.codecs] == [ZstdCodec]


def test_load_codec_chain_bad_module() -> None:
    with pytest.raises(CodecConfigError, match="cannot import module 'no_such_module_x'"):
        load_codec_chain("no_such_module_x:make")
    with pytest.raises(CodecConfigError, match="module:factory"):
        load_codec_chain("just_a_module")


# --- optional packages ----------------------------------------------------------------

def test_importing_duro_imports_no_optional_package() -> None:
    code = textwrap.dedent("""
        import sys, duro, duro.serde
        from duro.serde import CodecChain, FileBlobStore, OffloadCodec
        CodecChain([OffloadCodec(FileBlobStore("/nonexistent"))])
        print(sorted(m for m in ("zstandard", "cryptography", "boto3", "botocore")
                     if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module, extra, make", [
    ("zstandard", "zstd", lambda: ZstdCodec()),
    ("cryptography", "crypto", lambda: AesGcmCodec(KEYS, current_key_id="k1")),
    ("boto3", "s3", lambda: S3BlobStore("bucket")),
])
def test_a_missing_package_names_its_extra(monkeypatch: pytest.MonkeyPatch, module: str,
                                           extra: str, make: object) -> None:
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    assert callable(make)
    with pytest.raises(CodecUnavailableError, match=rf"duro\[{extra}\]") as caught:
        make()
    assert caught.value.extra == extra
    assert isinstance(caught.value, ImportError)
