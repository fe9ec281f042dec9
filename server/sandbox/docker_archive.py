"""Docker's archive API: a path's stat (HEAD), and the helpers for its tar streams."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import docker.errors

from server.sandbox.backend import BackendError, ContainerGone, PathStat

_API_TIMEOUT_SECONDS = 60
_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27


def parse_go_time(value: str) -> datetime | None:
    if not value:
        return None
    # RFC 3339 with nanoseconds: Python takes at most microseconds.
    head, _, rest = value.partition(".")
    if rest:
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        value = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stat_from_header(path: str, header: str) -> PathStat:
    data = json.loads(base64.b64decode(header))
    mode = int(data.get("mode", 0))
    return PathStat(
        path=path,
        size=int(data.get("size", 0)),
        mode=mode & 0o7777,
        modify_time=parse_go_time(str(data.get("mtime", ""))),
        is_dir=bool(mode & _GO_MODE_DIR),
        is_symlink=bool(mode & _GO_MODE_SYMLINK),
        link_target=str(data.get("linkTarget", "")),
    )


def stat_path(api: Any, container_id: str, path: str) -> PathStat | None:
    """The path (not following a final symlink) via a HEAD on the archive API."""
    url = f"{api.base_url}/v{api.api_version}/containers/{quote(container_id)}/archive"
    response = api.head(url, params={"path": path}, timeout=_API_TIMEOUT_SECONDS)
    if response.status_code == 404:
        # A missing container also answers 404 (a HEAD has no body): tell the two apart.
        try:
            api.inspect_container(container_id)
        except docker.errors.NotFound as error:
            raise ContainerGone("no such container") from error
        return None
    if response.status_code >= 400:
        raise BackendError(f"archive stat failed with HTTP {response.status_code}")
    header = response.headers.get("X-Docker-Container-Path-Stat", "")
    try:
        return stat_from_header(path, header)
    except (binascii.Error, ValueError) as error:
        raise BackendError("unreadable path stat from the engine") from error


def closing(chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
