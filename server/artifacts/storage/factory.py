"""The blob store the settings ask for. The S3 store (aioboto3, botocore: about 35 MB) is
imported only when `blob_store == "s3"`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.artifacts.storage.base import BlobStore
from server.artifacts.storage.local import LocalBlobStore
from server.config import Settings

if TYPE_CHECKING:
    from server.artifacts.storage.s3 import S3Options


def s3_options(settings: Settings) -> S3Options:
    from server.artifacts.storage.s3 import S3Options

    secret = settings.s3_secret_access_key
    return S3Options(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret is not None else None,
        addressing_style=settings.s3_addressing_style,
        part_size=settings.s3_multipart_part_bytes,
    )


def make_blob_store(settings: Settings) -> BlobStore:
    """S3 when `blob_store == "s3"`, else the local store under `blob_dir`
    (default `data_dir/blobs`). Call `start()` on it before use."""
    if settings.blob_store == "s3":
        from server.artifacts.storage.s3 import S3BlobStore

        return S3BlobStore(s3_options(settings))
    return LocalBlobStore(settings.blob_dir or settings.data_dir / "blobs")
