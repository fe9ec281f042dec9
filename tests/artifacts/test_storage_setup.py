"""How the blob store is chosen and prepared."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from server.artifacts.storage import make_blob_store
from server.artifacts.storage.local import LocalBlobStore
from server.artifacts.storage.s3 import S3BlobStore, S3Options, content_disposition
from server.config import Settings


def test_the_local_store_is_the_default_under_the_data_dir(tmp_path: Path) -> None:
    store = make_blob_store(Settings(data_dir=tmp_path))
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"

    elsewhere = make_blob_store(Settings(data_dir=tmp_path, blob_dir=tmp_path / "b"))
    assert isinstance(elsewhere, LocalBlobStore)
    assert elsewhere.root == tmp_path / "b"


def test_s3_is_chosen_by_settings() -> None:
    store = make_blob_store(
        Settings(
            blob_store="s3",
            s3_bucket="artifacts",
            s3_prefix="/team/forge",
            s3_access_key_id="id",
            s3_secret_access_key="secret",
        )
    )
    assert isinstance(store, S3BlobStore)
    assert store.options.secret_access_key == "secret"
    sha = "ab" * 32
    assert store.key_for(sha) == f"team/forge/blobs/{sha}"
    assert store.temp_key().startswith("team/forge/tmp/")
    assert S3BlobStore(S3Options(bucket="b")).key_for(sha) == f"blobs/{sha}"


def test_s3_parts_must_be_at_least_5_mib() -> None:
    with pytest.raises(ValueError, match="at least"):
        S3Options(bucket="b", part_size=1024 * 1024)
    with pytest.raises(ValueError, match="s3_multipart_part_bytes"):
        Settings(s3_multipart_part_bytes=1024)


async def test_start_removes_uploads_left_by_a_crash(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    await store.start()
    stale = store.tmp_dir / "upload-stale.part"
    fresh = store.tmp_dir / "upload-fresh.part"  # perhaps another process's, in flight
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    await LocalBlobStore(tmp_path).start()

    assert not stale.exists()
    assert fresh.exists()


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("app.py", "attachment; filename=\"app.py\"; filename*=UTF-8''app.py"),
        ('a"b\\c/d.txt', "attachment; filename=\"abcd.txt\"; filename*=UTF-8''abcd.txt"),
        ("résumé.md", "attachment; filename=\"r_sum_.md\"; filename*=UTF-8''r%C3%A9sum%C3%A9.md"),
        ("\r\n", "attachment; filename=\"download\"; filename*=UTF-8''download"),
    ],
)
def test_content_disposition(filename: str, expected: str) -> None:
    assert content_disposition(filename) == expected
