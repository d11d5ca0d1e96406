"""An S3-compatible blob store (``boto3``: ``pip install 'duro[s3]'``).

Works with AWS S3 and with S3-compatible servers (MinIO, Ceph, R2...) through
``endpoint_url``. boto3 is synchronous: each call runs in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from duro.serde._extras import missing_extra
from duro.serde._offload import check_blob_key

__all__ = ["S3BlobStore"]

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3BlobStore:
    """Blobs as objects ``prefix + key`` in ``bucket``.

    Args:
        bucket: The bucket (it must exist; duro does not create it).
        prefix: Put before every key (e.g. ``"duro/blobs/"``).
        client: A boto3 S3 client to use; when omitted one is made with
            ``boto3.client("s3", **client_options)`` (credentials, region and
            endpoint from the usual boto3 sources or from ``client_options``).

    Raises:
        CodecUnavailableError: ``boto3`` is not installed.
    """

    def __init__(self, bucket: str, *, prefix: str = "duro/blobs/", client: Any = None,
                 **client_options: Any) -> None:
        try:
            import boto3
            from botocore.exceptions import ClientError
        except ImportError:
            raise missing_extra("boto3", "s3") from None
        self._bucket = bucket
        self._prefix = prefix
        self._client_error: type[Exception] = ClientError
        self._client = client if client is not None else boto3.client("s3", **client_options)

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self._bucket!r}, prefix={self._prefix!r})"

    async def put(self, key: str, data: bytes) -> None:
        # A content-addressed key always holds the same bytes: writing it again is
        # harmless, so no existence check (it would cost a round trip on every put).
        name = self._prefix + check_blob_key(key)
        await asyncio.to_thread(self._client.put_object, Bucket=self._bucket, Key=name,
                                Body=data)

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, self._prefix + check_blob_key(key))

    def _get(self, name: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=name)
        except self._client_error as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in _MISSING:
                return None
            raise
        body: bytes = response["Body"].read()
        return body
