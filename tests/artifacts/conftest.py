"""Blob stores under test: the local store in a temporary directory, and the S3 store
against moto's standalone server on loopback (a fresh bucket per test). Both are built by
`make_blob_store` from Settings, as the server builds them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.artifacts.storage import BlobStore, make_blob_store
from server.artifacts.storage.local import LocalBlobStore
from server.artifacts.storage.s3 import S3BlobStore
from server.config import Settings
from tests.fakes.s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoS3Server

MiB = 1024 * 1024
PART_SIZE = 5 * MiB  # S3's minimum, so tests cross part boundaries with little data


@pytest.fixture(scope="session")
async def moto_s3() -> AsyncIterator[MotoS3Server]:
    async with MotoS3Server() as server:
        yield server


@dataclass
class StoreUnderTest:
    """A started store, and a way to see everything it left in its backing storage."""

    kind: str
    store: BlobStore
    root: Path | None = None
    moto: MotoS3Server | None = None
    bucket: str = ""

    async def leftovers(self) -> list[str]:
        """Every file (local) or object and unfinished multipart upload (S3) there is."""
        if self.root is not None:
            return sorted(
                str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()
            )
        assert self.moto is not None
        async with self.moto.client() as client:
            objects = await client.list_objects_v2(Bucket=self.bucket)
            uploads = await client.list_multipart_uploads(Bucket=self.bucket)
        found = [o["Key"] for o in objects.get("Contents", [])]
        found += [f"multipart:{u['Key']}" for u in uploads.get("Uploads", [])]
        return sorted(found)


def s3_settings(moto: MotoS3Server, bucket: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "blob_store": "s3",
        "s3_bucket": bucket,
        "s3_prefix": "forge/",
        "s3_endpoint_url": moto.endpoint_url,
        "s3_region": REGION,
        "s3_access_key_id": ACCESS_KEY_ID,
        "s3_secret_access_key": SECRET_ACCESS_KEY,
        "s3_addressing_style": "path",
        "s3_multipart_part_bytes": PART_SIZE,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["local", "s3"])
async def blobs(
    request: pytest.FixtureRequest, tmp_path: Path, moto_s3: MotoS3Server
) -> AsyncIterator[StoreUnderTest]:
    if request.param == "local":
        store = make_blob_store(Settings(data_dir=tmp_path))
        assert isinstance(store, LocalBlobStore)
        under_test = StoreUnderTest("local", store, root=store.root)
    else:
        bucket = await moto_s3.create_bucket()
        store = make_blob_store(s3_settings(moto_s3, bucket))
        assert isinstance(store, S3BlobStore)
        under_test = StoreUnderTest("s3", store, moto=moto_s3, bucket=bucket)
    await store.start()
    try:
        yield under_test
    finally:
        await store.close()
