"""Previews: an artifact version running in a page that an iframe on another origin can show.

`url` hands a caller who may read the artifact a short-lived signed link
(`/v1/previews/<token>/`); the token names the artifact version and what is shown, and is
the link's only credential, so the page needs no bearer header. What is shown:
- the version's newest successful build: a generated page that loads its bundle (and CSS);
- else a tree with an `index.html` at its root: the tree as a static site;
- else an HTML artifact: the page itself.
A version that can be built but was not is FAILED_PRECONDITION (NOT_BUILT); any other kind
NOT_PREVIEWABLE (a Python artifact runs with RunCode instead).

Every file is served with `Content-Security-Policy: sandbox allow-scripts` (scripts run, but
in an opaque origin: no cookies, storage or same-origin access to the server), `nosniff`
and no referrer; the server sets no cookie. The signing key is derived from the server
secret and used for nothing else, so a preview token is never an access token.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from server.artifacts import build_store, store
from server.artifacts.access import artifact_for
from server.artifacts.builds import is_buildable
from server.artifacts.core import ArtifactsCore, checked_version_request, version_of
from server.artifacts.kinds import Kind
from server.core import lean_imports
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from server.db.engine import reading

INDEX = "index.html"
PAGE_CONTENT_TYPE = "text/html; charset=utf-8"
NOT_BUILT = "NOT_BUILT"
NOT_PREVIEWABLE = "NOT_PREVIEWABLE"
PREVIEW_LINK_INVALID = "PREVIEW_LINK_INVALID"
PREVIEW_FILE_NOT_FOUND = "PREVIEW_FILE_NOT_FOUND"
MIN_TTL = timedelta(seconds=10)
MAX_TTL = timedelta(hours=1)
HEADERS = (
    ("content-security-policy", "sandbox allow-scripts"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "private, max-age=60"),
)
"""Sent with every preview file (through the gateway, the HTTP response's headers)."""
_ALGORITHM = "HS256"
_BUILD, _TREE, _PAGE = "build", "tree", "page"


@dataclass(frozen=True, slots=True)
class PreviewLink:
    url: str
    expire_time: datetime
    build_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class _Shown:
    artifact_id: uuid.UUID
    version: int
    source: str
    """_BUILD, _TREE or _PAGE."""
    build_id: uuid.UUID | None = None


class PreviewTokens:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"forge preview links v1", hashlib.sha256).digest()

    def issue(self, shown: _Shown, expires: datetime) -> str:
        lean_imports.load_pyjwt()  # on first use, with its HMAC algorithms only
        import jwt

        claims = {
            "a": str(shown.artifact_id),
            "v": shown.version,
            "s": shown.source,
            "b": str(shown.build_id or ""),
            "exp": int(expires.timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def read(self, token: str) -> _Shown:
        """PERMISSION_DENIED (PREVIEW_LINK_INVALID) for a link that is expired, altered or not
        one of ours."""
        lean_imports.load_pyjwt()  # on first use, with its HMAC algorithms only
        import jwt

        try:
            claims = jwt.decode(token, self._key, algorithms=[_ALGORITHM])
            return _Shown(
                uuid.UUID(claims["a"]),
                int(claims["v"]),
                str(claims["s"]),
                uuid.UUID(claims["b"]) if claims["b"] else None,
            )
        except jwt.ExpiredSignatureError:
            raise PermissionDenied(
                "the preview link has expired; ask for a new one", PREVIEW_LINK_INVALID
            ) from None
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
            raise PermissionDenied("not a valid preview link", PREVIEW_LINK_INVALID) from None


def preview_page(title: str, paths: list[str]) -> bytes:
    """The page that runs a bundle: its CSS, an empty #root, its scripts."""
    styles = "".join(
        f'<link rel="stylesheet" href="{html.escape(path)}">\n'
        for path in paths
        if path.endswith(".css") and "/" not in path
    )
    scripts = "".join(
        f'<script src="{html.escape(path)}"></script>\n'
        for path in paths
        if path.endswith(".js") and "/" not in path
    )
    return (
        '<!doctype html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n{styles}</head>\n<body>\n"
        f'<div id="root"></div>\n{scripts}</body>\n</html>\n'
    ).encode()


class Previews:
    def __init__(self, core: ArtifactsCore, tokens: PreviewTokens, public_url: str) -> None:
        self._core = core
        self._tokens = tokens
        self._public_url = public_url.rstrip("/")

    async def link(
        self, caller: Caller, artifact_id: str, version: int, ttl: timedelta | None
    ) -> PreviewLink:
        aid = checked_version_request(artifact_id, version)
        lifetime = ttl or timedelta(minutes=10)
        if not MIN_TTL <= lifetime <= MAX_TTL:
            raise InvalidArgument.of([FieldViolation("ttl", "must be from 10 seconds to 1 hour")])
        async with reading(self._core.sessions) as db:
            artifact = await artifact_for(db, caller, aid, ProjectRole.VIEWER)
            number = (await version_of(db, artifact, version)).version
            build = await build_store.latest_succeeded(db, aid, number)
            if build is not None:
                shown = _Shown(aid, number, _BUILD, build.id)
            elif artifact.kind == Kind.TREE.value and await store.get_file(db, aid, number, INDEX):
                shown = _Shown(aid, number, _TREE)
            elif artifact.kind == Kind.HTML.value:
                shown = _Shown(aid, number, _PAGE)
            elif is_buildable(artifact):
                raise FailedPrecondition(
                    f"version {number} has no successful build to show: build it first "
                    "(BuildArtifact)",
                    NOT_BUILT,
                )
            else:
                raise FailedPrecondition(
                    "only HTML artifacts, trees with an index.html and built artifacts have a "
                    "preview (run code with RunCode)",
                    NOT_PREVIEWABLE,
                )
        expires = datetime.now(UTC) + lifetime
        token = self._tokens.issue(shown, expires)
        return PreviewLink(f"{self._public_url}/v1/previews/{token}/", expires, shown.build_id)

    async def file(self, token: str, path: str) -> tuple[bytes, str]:
        """A file of the preview a token names: its content and content type."""
        shown = self._tokens.read(token)
        path = path.strip("/") or INDEX
        blobs = self._core.blobs
        async with reading(self._core.sessions) as db:
            artifact = await store.get(db, shown.artifact_id)
            if artifact is None:
                raise _file_not_found()
            if shown.source == _BUILD:
                assert shown.build_id is not None
                if path == INDEX:
                    files = await build_store.files_of(db, [shown.build_id])
                    return preview_page(artifact.title, [f.path for f in files]), PAGE_CONTENT_TYPE
                output = await build_store.get_file(db, shown.build_id, path)
                if output is None:
                    raise _file_not_found()
                sha256, content_type = output.sha256, output.content_type
            elif shown.source == _TREE:
                file = await store.get_file(db, shown.artifact_id, shown.version, path)
                if file is None:
                    raise _file_not_found()
                sha256, content_type = file.sha256, file.content_type
            else:
                version = await store.get_version(db, shown.artifact_id, shown.version)
                if path != INDEX or version is None:
                    raise _file_not_found()
                sha256, content_type = version.sha256, version.content_type
        return await blobs.read(sha256), content_type


def _file_not_found() -> NotFound:
    return NotFound("the preview has no such file", PREVIEW_FILE_NOT_FOUND)
