"""Payloads: JSON by type hints (the data converter), and codecs over stored payloads.

Importing this package imports no optional dependency: each codec imports its package
(``zstandard``, ``cryptography``, ``boto3``) when it is constructed.
"""

from __future__ import annotations

from duro.serde._aes import AesGcmCodec, KeySource, generate_key, parse_keys
from duro.serde._codec import CodecChain, InlineCodec, PayloadCodec
from duro.serde._converter import PayloadConverter
from duro.serde._json import convert, decode, encode, hints_of
from duro.serde._offload import BlobStore, FileBlobStore, OffloadCodec
from duro.serde._payload import JSON_METADATA, Payload, from_stored, is_envelope, to_stored
from duro.serde._s3 import S3BlobStore
from duro.serde._spec import load_codec_chain
from duro.serde._zstd import ZstdCodec

__all__ = [
    "JSON_METADATA",
    "AesGcmCodec",
    "BlobStore",
    "CodecChain",
    "FileBlobStore",
    "InlineCodec",
    "KeySource",
    "OffloadCodec",
    "Payload",
    "PayloadCodec",
    "PayloadConverter",
    "S3BlobStore",
    "ZstdCodec",
    "convert",
    "decode",
    "encode",
    "from_stored",
    "generate_key",
    "hints_of",
    "is_envelope",
    "load_codec_chain",
    "parse_keys",
    "to_stored",
]
