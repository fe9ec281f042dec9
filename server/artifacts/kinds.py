"""What an artifact is: kinds, origins, content types and the upload allow list."""

from __future__ import annotations

import functools
import mimetypes
import re
from collections.abc import Iterable
from enum import StrEnum
from pathlib import PurePosixPath

DEFAULT_CONTENT_TYPE = "application/octet-stream"
TREE_CONTENT_TYPE = "application/vnd.forge.tree+json"
"""A tree version's content: its manifest."""


class Kind(StrEnum):
    CODE = "code"
    HTML = "html"
    REACT = "react"
    MARKDOWN = "markdown"
    IMAGE = "image"
    FILE = "file"
    TREE = "tree"
    """A tree of files (a multi-file project): trees.py."""


class Origin(StrEnum):
    CHAT = "chat"
    RUN = "run"
    API = "api"
    UPLOAD = "upload"
    IMAGE_GENERATION = "image_generation"


_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_PARAMETER = re.compile(r"""\s*[a-z0-9!#$&^_.+-]+=(?:[a-z0-9!#$&^_.+-]+|"[^"\\\r\n]*")\s*""")

# Source files the standard table misses or names oddly; bare MIME types, as extraction uses.
_BY_EXTENSION = {
    ".py": "text/x-python",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".jsx": "text/javascript",
    ".ts": "text/typescript",
    ".tsx": "text/typescript",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".sql": "application/sql",
    ".sh": "text/x-shellscript",
    ".go": "text/x-go",
    ".rs": "text/x-rust",
    ".java": "text/x-java",
    ".kt": "text/x-kotlin",
    ".c": "text/x-c",
    ".h": "text/x-c",
    ".cpp": "text/x-c++",
    ".cs": "text/x-csharp",
    ".rb": "text/x-ruby",
    ".php": "text/x-php",
    ".swift": "text/x-swift",
    ".lua": "text/x-lua",
    ".scss": "text/x-scss",
}
_BY_KIND = {
    Kind.HTML: "text/html",
    Kind.MARKDOWN: "text/markdown",
    Kind.CODE: "text/plain",
    Kind.REACT: "text/javascript",
}
_CODE_TYPES = frozenset(
    {"text/javascript", "text/typescript", "text/css", "application/json", "application/xml"}
)


@functools.cache
def _standard() -> mimetypes.MimeTypes:
    """Only the built-in table: the system's mime.types differ from machine to machine. Built
    on first use: making one reads the system's tables too (about 1 MiB resident)."""
    return mimetypes.MimeTypes(filenames=())


def normalize_content_type(value: str) -> str | None:
    """`value` lower-cased, parameters kept ("text/plain; charset=utf-8"), or None if it is
    not a MIME type."""
    text = value.strip().lower()
    bare, _, parameters = text.partition(";")
    if len(text) > 255 or not _MIME.fullmatch(bare.strip()):
        return None
    if not parameters:
        return bare.strip()
    parts = parameters.split(";")
    if not all(_PARAMETER.fullmatch(part) for part in parts):
        return None
    return "; ".join([bare.strip(), *(part.strip() for part in parts)])


def essence(content_type: str) -> str:
    """The MIME type without parameters: "text/plain; charset=utf-8" -> "text/plain"."""
    return content_type.partition(";")[0].strip().lower()


def is_allowed(content_type: str, allowed: Iterable[str]) -> bool:
    """Whether `content_type` matches an entry: exact, or `type/*` for a whole family."""
    bare = essence(content_type)
    family = bare.split("/", 1)[0] + "/*"
    return any(essence(entry) in (bare, family) for entry in allowed)


def guess_content_type(filename: str, kind: Kind | None = None) -> str:
    """The content type a file name suggests, else one that fits the kind."""
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix in _BY_EXTENSION:
        return _BY_EXTENSION[suffix]
    guessed, _ = _standard().guess_type(f"file{suffix}") if suffix else (None, None)
    if guessed:
        return guessed
    if kind is not None and kind in _BY_KIND:
        return _BY_KIND[kind]
    return DEFAULT_CONTENT_TYPE


def guess_kind(content_type: str, language: str, filename: str) -> Kind:
    """The kind a new artifact gets when its creator names none."""
    bare = essence(content_type)
    suffix = PurePosixPath(filename).suffix.lower()
    if bare.startswith("image/"):
        return Kind.IMAGE
    if bare == "text/html":
        return Kind.HTML
    if bare == "text/markdown" or language == "markdown":
        return Kind.MARKDOWN
    if suffix in (".jsx", ".tsx") or language in ("jsx", "tsx", "react"):
        return Kind.REACT
    if language or suffix in _BY_EXTENSION or bare in _CODE_TYPES or bare.startswith("text/x-"):
        return Kind.CODE
    return Kind.FILE


# Content a browser would run in the gateway's origin if it were shown in place.
_ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/javascript",
        "application/javascript",
        "application/ecmascript",
        "text/ecmascript",
        "application/xml",
        "text/xml",
    }
)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
)
"""Sent with raw content: even shown in place, it runs nothing and loads nothing."""


def content_disposition(content_type: str) -> str:
    """`attachment` for content that could run script (HTML, SVG, JavaScript, XML), so a
    browser saves it instead of rendering it; `inline` for the rest."""
    return "attachment" if essence(content_type) in _ACTIVE_TYPES else "inline"
