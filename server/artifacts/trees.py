"""Tree artifacts (multi-file projects): checking the files of a new tree version, storing
their bytes, and the manifest that is the version's own content.

Each file is a blob of its own (content-addressed: identical files are stored once, whatever
version or artifact holds them); the version's blob is the manifest, canonical JSON of its
files in path order. As for single content, every blob is stored before the transaction that
records the version, held in it, and removed again if the write fails (blobrefs.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from server.artifacts import validation
from server.artifacts.blobrefs import BlobKeeper
from server.artifacts.kinds import (
    DEFAULT_CONTENT_TYPE,
    TREE_CONTENT_TYPE,
    guess_content_type,
    is_allowed,
)
from server.artifacts.storage import BlobInfo, BlobStore
from server.artifacts.storage.errors import UPLOAD_TOO_LARGE, upload_too_large
from server.artifacts.views import FileView
from server.core.errors import FieldViolation, InvalidArgument, Violations

if TYPE_CHECKING:  # core.py builds a TreeWriter
    from server.artifacts.core import Limits

MAX_PATH_BYTES = 1024
STORE_CONCURRENCY = 8
"""Files stored at once (S3 PUTs in flight) while a tree is written."""


@dataclass(frozen=True)
class NewFile:
    """A file of a tree version as a request gives it (checked by `checked_files`)."""

    path: str
    content: bytes
    content_type: str = ""


@dataclass(frozen=True)
class CheckedFile:
    path: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class StoredTree:
    """A tree version's blobs, stored and not yet recorded."""

    files: tuple[FileView, ...]
    manifest: BlobInfo
    blobs: tuple[BlobInfo, ...]
    """Every blob stored for it, the manifest's included."""
    total_bytes: int
    contents: dict[str, tuple[bytes, str]]
    """Each blob's bytes and content type, to store again one removed meanwhile."""


def tree_path(value: str, field: str, violations: Violations) -> str:
    if not value:
        violations.add(field, "is required")
    elif len(value.encode()) > MAX_PATH_BYTES:
        violations.add(field, f"must be at most {MAX_PATH_BYTES} bytes")
    elif validation.has_control_characters(value) or "\\" in value:
        violations.add(field, "must not contain control characters or backslashes")
    elif value.startswith("/"):
        violations.add(field, "must be relative (no leading '/')")
    elif any(part in ("", ".", "..") for part in value.split("/")):
        violations.add(field, "must not have empty, '.' or '..' segments")
    return value


def checked_files(
    files: Sequence[NewFile], field: str, limits: Limits, violations: Violations
) -> list[CheckedFile]:
    """The files of a new tree version, checked (paths, content types) with their content
    types settled. Too many files or bytes are refused at once, before anything else."""
    if len(files) > limits.max_tree_files:
        raise InvalidArgument.of(
            [FieldViolation(field, f"must hold at most {limits.max_tree_files} files")],
            reason=UPLOAD_TOO_LARGE,
        )
    if sum(len(file.content) for file in files) > limits.max_upload_bytes:
        raise upload_too_large(limits.max_upload_bytes)
    checked: list[CheckedFile] = []
    first_index: dict[str, int] = {}
    for index, file in enumerate(files):
        prefix = f"{field}[{index}]"
        path = tree_path(file.path, f"{prefix}.path", violations)
        if path in first_index:
            violations.add(f"{prefix}.path", f"repeats {field}[{first_index[path]}].path")
        first_index.setdefault(path, index)
        content_type = _content_type(file, prefix, limits, violations)
        checked.append(CheckedFile(path, file.content, content_type))
    directories = {path.rsplit("/", 1)[0] for path in first_index if "/" in path}
    for path in list(directories):
        while "/" in path:
            path = path.rsplit("/", 1)[0]
            directories.add(path)
    for path, index in first_index.items():
        if path in directories:
            violations.add(f"{field}[{index}].path", "is also the directory of other files")
    return checked


def _content_type(file: NewFile, prefix: str, limits: Limits, violations: Violations) -> str:
    """The declared type (which must be accepted), else the path's guess (or, when the
    server does not accept the guess, application/octet-stream)."""
    if file.content_type:
        declared = validation.content_type(file.content_type, f"{prefix}.content_type", violations)
        validation.allowed_content_type(
            declared, limits.allowed_content_types, f"{prefix}.content_type", violations
        )
        return declared
    guessed = guess_content_type(file.path)
    return guessed if is_allowed(guessed, limits.allowed_content_types) else DEFAULT_CONTENT_TYPE


def required_files(
    files: Sequence[NewFile], field: str, limits: Limits, violations: Violations
) -> list[CheckedFile]:
    """As `checked_files`, and a tree version holds at least one file."""
    if not files:
        violations.add(field, "a tree artifact needs at least one file")
        return []
    return checked_files(files, field, limits, violations)


def manifest_bytes(files: Sequence[FileView]) -> bytes:
    """Canonical JSON of a tree version's files: path order (code points, which is UTF-8
    byte order), fixed key order, no whitespace. Equal trees have equal manifests."""
    entries = [
        {
            "path": file.path,
            "sizeBytes": file.size_bytes,
            "sha256": file.sha256,
            "contentType": file.content_type,
        }
        for file in sorted(files, key=lambda file: file.path)
    ]
    return json.dumps({"files": entries}, ensure_ascii=False, separators=(",", ":")).encode()


class TreeWriter:
    """Stores tree versions' blobs, and holds them in the transaction that records them."""

    def __init__(self, blobs: BlobStore, keeper: BlobKeeper) -> None:
        self._blobs = blobs
        self._keeper = keeper

    async def store(self, files: Sequence[CheckedFile]) -> StoredTree:
        """Stores each file and the manifest; on failure or cancellation removes what it
        created before the error goes on."""
        stored: list[BlobInfo] = []
        limit = asyncio.Semaphore(STORE_CONCURRENCY)

        async def put(file: CheckedFile) -> BlobInfo:
            async with limit:
                blob = await self._blobs.put_bytes(file.content, file.content_type)
            stored.append(blob)
            return blob

        async with self._keeper.releasing_on_failure(stored):
            tasks = [asyncio.ensure_future(put(file)) for file in files]
            try:
                blobs = await asyncio.gather(*tasks)
            except BaseException:
                # The first error goes on as it is, once every other store has ended (so
                # `stored` is complete for the clean-up).
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            views = tuple(
                FileView(file.path, blob.size, blob.sha256, file.content_type)
                for file, blob in zip(files, blobs, strict=True)
            )
            manifest = manifest_bytes(views)
            manifest_blob = await self._blobs.put_bytes(manifest, TREE_CONTENT_TYPE)
            stored.append(manifest_blob)
        contents = {
            view.sha256: (file.content, file.content_type)
            for view, file in zip(views, files, strict=True)
        }
        contents[manifest_blob.sha256] = (manifest, TREE_CONTENT_TYPE)
        return StoredTree(
            files=views,
            manifest=manifest_blob,
            blobs=tuple(stored),
            total_bytes=sum(view.size_bytes for view in views),
            contents=contents,
        )

    async def hold(self, db: AsyncSession, tree: StoredTree) -> None:
        """In the recording transaction: keeps the tree's blobs (storing again any that a
        concurrent delete removed since `store`)."""

        async def restore(sha256: str) -> None:
            data, content_type = tree.contents[sha256]
            await self._blobs.put_bytes(data, content_type)

        await self._keeper.hold(db, tree.contents, restore)
