"""What identifies a build's output: the same sources, entry and build image give the same
bundle, so a stored output can be served again instead of building."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def fingerprint(files: Mapping[str, bytes], entry: str | None, image: str) -> str:
    """A hex SHA-256 over the image (esbuild and React are pinned in it), the entry asked
    for and every path with its content's digest, in path order."""
    digest = hashlib.sha256()
    digest.update(b"forge-build\0" + image.encode() + b"\0" + (entry or "").encode() + b"\0")
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()
