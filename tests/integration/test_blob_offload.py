"""Large-payload offload to real blob stores: files on disk, and S3 (a moto server on a
loopback port, in its own process: the one fake, for a service we cannot run here)."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from duro import InvalidArgumentError, PayloadDecodeError
from duro.errors import BlobCorruptError, BlobMissingError
from duro.serde import (
    AesGcmCodec,
    CodecChain,
    FileBlobStore,
    OffloadCodec,
    Payload,
    S3BlobStore,
    ZstdCodec,
    from_stored,
    to_stored,
)
from tests.conftest import run

MB20 = orjson.dumps({"text": base64.b64encode(os.urandom(15 * 1024 * 1024)).decode()})
SECRET = b"plaintext-marker-0123456789"
KEYS = {"k1": os.urandom(32)}


def only(items: list[bytes | None]) -> bytes:
    assert len(items) == 1 and items[0] is not None
    return items[0]


def digest_of(stored: bytes) -> str:
    return from_stored(stored).metadata["sha256"]


# --- files ----------------------------------------------------------------------------

def test_a_20mb_payload_is_offloaded_and_comes_back(tmp_path: Path) -> None:
    assert len(MB20) > 20_000_000
    store = FileBlobStore(tmp_path / "blobs")
    chain = CodecChain([OffloadCodec(store)])
    stored = only(run(chain.encode_stored([MB20])))
    assert len(stored) < 1024
    ref = from_stored(stored).metadata
    assert ref["encoding"] == "duro/blob" and ref["size"] == str(len(MB20))
    assert ref["sha256"] == hashlib.sha256(MB20).hexdigest()
    blob = store.path(ref["sha256"])
    assert blob.read_bytes() == MB20
    assert run(chain.decode_stored([stored, None])) == [MB20, None]


def test_small_payloads_stay_inline(tmp_path: Path) -> None:
    chain = CodecChain([OffloadCodec(FileBlobStore(tmp_path), threshold=1024)])
    small = b'{"a":"' + b"x" * 1000 + b'"}'
    assert run(chain.encode_stored([small]))[0] is small
    assert not any(tmp_path.iterdir())


def test_blob_files_are_private_and_written_once(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    data = os.urandom(300_000)
    key = hashlib.sha256(data).hexdigest()
    run(store.put(key, data))
    path = store.path(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "blobs").stat().st_mode) == 0o700
    before = path.stat()
    run(store.put(key, data))  # idempotent: the existing file is kept, not rewritten
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert run(store.get(key)) == data
    assert [p.name for p in path.parent.iterdir()] == [key]  # no temporary file left


def test_file_store_refuses_keys_that_are_not_digests(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    for key in ["../../etc/passwd", "ab", "A" * 64, "0" * 63]:
        with pytest.raises(InvalidArgumentError, match="not a sha256"):
            run(store.put(key, b"x"))
        with pytest.raises(InvalidArgumentError):
            run(store.get(key))
    assert run(store.get("0" * 64)) is None


def test_missing_and_corrupt_blobs_are_typed_errors(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    chain = CodecChain([OffloadCodec(store, threshold=1000)])
    payload = b'"' + b"y" * 5000 + b'"'
    stored = only(run(chain.encode_stored([payload])))
    digest = digest_of(stored)
    path = store.path(digest)

    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BlobCorruptError, match=digest) as corrupt:
        run(chain.decode_stored([stored]))
    assert (corrupt.value.digest, corrupt.value.size) == (digest, len(payload))
    path.write_bytes(payload[:-1])
    with pytest.raises(BlobCorruptError, match="holds 5001 bytes"):
        run(chain.decode_stored([stored]))

    path.unlink()
    with pytest.raises(BlobMissingError, match=digest) as missing:
        run(chain.decode_stored([stored]))
    assert isinstance(missing.value, PayloadDecodeError)
    run(chain.encode_stored([payload]))  # writing it again restores it
    assert run(chain.decode_stored([stored])) == [payload]


def test_a_corrupt_reference_is_a_decode_error(tmp_path: Path) -> None:
    chain = CodecChain([OffloadCodec(FileBlobStore(tmp_path))])
    for ref in [{"sha256": "../x", "size": "1"}, {"sha256": "0" * 64, "size": "-1"},
                {"sha256": "0" * 64}]:
        bad = to_stored(Payload(data=b"", metadata={"encoding": "duro/blob", **ref}))
        with pytest.raises(PayloadDecodeError, match="corrupt blob reference"):
            run(chain.decode_stored([bad]))


class CountingStore(FileBlobStore):
    gets = 0

    async def get(self, key: str) -> bytes | None:
        self.gets += 1
        return await super().get(key)


def test_one_blob_named_twice_in_a_batch_is_read_once(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    chain = CodecChain([OffloadCodec(store, threshold=100)])
    payload = b'"' + b"z" * 500 + b'"'
    stored = run(chain.encode_stored([payload, payload]))
    assert stored[0] == stored[1]
    assert run(chain.decode_stored(stored * 3)) == [payload] * 6
    assert store.gets == 1


def test_encrypted_then_offloaded_blob_holds_no_plaintext(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    chain = CodecChain([AesGcmCodec(KEYS, current_key_id="k1"), OffloadCodec(store)])
    payload = orjson.dumps({"secret": SECRET.decode(), "pad": "p" * 400_000})
    stored = only(run(chain.encode_stored([payload])))
    assert len(stored) < 1024
    blob = store.path(digest_of(stored)).read_bytes()
    assert SECRET not in blob and b"ppppppppp" not in blob
    assert run(chain.decode_stored([stored])) == [payload]


def test_all_three_codecs(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    chain = CodecChain([ZstdCodec(), AesGcmCodec(KEYS, current_key_id="k1"),
                        OffloadCodec(store)])
    compressible = b'{"a":"' + b"abc" * 100_000 + b'"}'  # compresses under the threshold
    stored = run(chain.encode_stored([MB20, compressible, b"1", None]))
    assert all(len(s) < 1024 for s in stored if s is not None)
    assert from_stored(only(stored[:1])).encoding == "duro/blob"
    assert from_stored(only(stored[1:2])).encoding == "duro/aes-gcm"
    assert len(list(tmp_path.rglob("*"))) == 2  # one subdirectory, one blob
    # a reader whose chain lists the codecs in another order reads them all
    reader = CodecChain([OffloadCodec(store), ZstdCodec(),
                         AesGcmCodec(KEYS, current_key_id="k1")])
    assert run(reader.decode_stored(stored)) == [MB20, compressible, b"1", None]


# --- S3 (moto server) ------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    name = "duro-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:20]
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def s3_store(endpoint: str, bucket: str) -> S3BlobStore:
    return S3BlobStore(bucket, prefix="runs/", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")


def test_s3_store_put_get(s3_endpoint: str, bucket: str) -> None:
    store = s3_store(s3_endpoint, bucket)
    data = os.urandom(1000)
    key = hashlib.sha256(data).hexdigest()
    assert run(store.get(key)) is None
    run(store.put(key, data))
    run(store.put(key, data))
    assert run(store.get(key)) == data
    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"runs/{key}"]


def test_s3_offload_round_trip_and_typed_errors(s3_endpoint: str, bucket: str) -> None:
    store = s3_store(s3_endpoint, bucket)
    chain = CodecChain([AesGcmCodec(KEYS, current_key_id="k1"), OffloadCodec(store)])
    stored = only(run(chain.encode_stored([MB20])))
    assert len(stored) < 1024
    assert run(chain.decode_stored([stored])) == [MB20]

    client, name = s3_client(s3_endpoint), f"runs/{digest_of(stored)}"
    client.put_object(Bucket=bucket, Key=name, Body=b"other content")
    with pytest.raises(BlobCorruptError, match=digest_of(stored)):
        run(chain.decode_stored([stored]))
    client.delete_object(Bucket=bucket, Key=name)
    with pytest.raises(BlobMissingError, match=digest_of(stored)):
        run(chain.decode_stored([stored]))


def test_s3_errors_other_than_missing_are_not_hidden(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint, "no-such-bucket-duro")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="NoSuchBucket"):
        run(store.get("0" * 64))
