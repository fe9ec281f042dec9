"""Resource ids: UUIDv7, so ids sort by creation time (keyset pagination relies on it)."""

from __future__ import annotations

import os
import secrets
import socket
import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def parse_id(value: str) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one (callers answer NOT_FOUND or INVALID)."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


def process_owner_id() -> str:
    """A server process's name in leases and holds: unique per process start, at most 64
    characters (host, pid, random)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
