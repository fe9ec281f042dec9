"""The files of a static site to publish: relative paths ("/" separators) → bytes and
content type, with `index.html` at the root.

Paths are checked once, here, so every target can trust them: no absolute paths, no `.`,
`..` or empty segments, no backslashes or control characters, nothing inside a `.git`
directory (GitHub Pages writes the files into a work tree). Digests (SHA-1, what Netlify
and Vercel address files by) are computed once per site.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from server.core.errors import Violations

INDEX_DOCUMENT = "index.html"
INVALID_SITE = "INVALID_SITE"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_PATH_LENGTH = 512

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".wasm": "application/wasm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".avif": "image/avif",
}

# A bundler's content hash in a file name: `app-3f2a9c1b.js`, `main.5d41402a.css`,
# `chunk-KXJ4QZ7P.js` (esbuild's default is 8 upper-case base32 characters).
_FINGERPRINT = re.compile(r"[.-](?=[0-9A-Za-z]*\d)([0-9a-f]{8,}|[0-9A-Z]{8,})\.[A-Za-z0-9]+$")

HTML_CACHE_CONTROL = "no-cache"
FINGERPRINTED_CACHE_CONTROL = "public, max-age=31536000, immutable"
ASSET_CACHE_CONTROL = "public, max-age=300"


def content_type_for(path: str) -> str:
    """The Content-Type a path is served with, from its extension."""
    suffix = path[path.rfind(".") :].lower() if "." in path.rsplit("/", 1)[-1] else ""
    known = _CONTENT_TYPES.get(suffix)
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path, strict=False)
    if guessed is None:
        return DEFAULT_CONTENT_TYPE
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def is_fingerprinted(path: str) -> bool:
    """Whether the file name carries a content hash (so its URL never serves other bytes)."""
    return _FINGERPRINT.search(path.rsplit("/", 1)[-1]) is not None


def cache_control_for(path: str, content_type: str) -> str:
    """HTML is revalidated on every visit (it names the assets of the current version);
    fingerprinted assets are cached for a year; other assets for a few minutes."""
    if content_type.startswith("text/html"):
        return HTML_CACHE_CONTROL
    if is_fingerprinted(path):
        return FINGERPRINTED_CACHE_CONTROL
    return ASSET_CACHE_CONTROL


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a site path, or None when it can."""
    if not path:
        return "is empty"
    if len(path) > MAX_PATH_LENGTH:
        return f"is longer than {MAX_PATH_LENGTH} characters"
    if path.startswith("/"):
        return "must be relative (no leading '/')"
    if "\\" in path or any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "must use '/' separators and no control characters"
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        return "must not contain empty, '.' or '..' segments"
    if any(segment.lower() == ".git" for segment in segments):
        return "must not be inside a .git directory"
    return None


@dataclass(frozen=True)
class SiteFile:
    path: str
    data: bytes = field(repr=False)
    content_type: str

    @cached_property
    def sha1(self) -> str:
        return hashlib.sha1(self.data, usedforsecurity=False).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Site:
    """A checked set of files; build one with `Site.of` (content types given or guessed)."""

    files: Mapping[str, SiteFile]

    @classmethod
    def of(cls, files: Mapping[str, bytes | tuple[bytes, str | None]]) -> Site:
        """Raises InvalidArgument (reason INVALID_SITE, a violation per bad path)."""
        violations = Violations()
        checked: dict[str, SiteFile] = {}
        for path, value in files.items():
            data, content_type = value if isinstance(value, tuple) else (value, None)
            problem = path_problem(path)
            if problem:
                violations.add(f"files[{path!r}]", f"the path {problem}")
                continue
            checked[path] = SiteFile(path, data, content_type or content_type_for(path))
        if not violations:
            violations.check(
                INDEX_DOCUMENT in checked,
                "files",
                f"a site needs an {INDEX_DOCUMENT} at its root",
            )
        violations.raise_if_any(INVALID_SITE)
        return cls(dict(sorted(checked.items())))

    def __iter__(self) -> Iterator[SiteFile]:
        return iter(self.files.values())

    def __len__(self) -> int:
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files.values())

    def by_digest(self) -> dict[str, SiteFile]:
        """One file per distinct SHA-1 (the first path in order): what a digest-addressed
        target needs uploaded at most."""
        unique: dict[str, SiteFile] = {}
        for file in self.files.values():
            unique.setdefault(file.sha1, file)
        return unique
