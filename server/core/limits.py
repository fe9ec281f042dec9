"""Fair shares: the per-user limits every service enforces on its own resources.

A user's effective limits are the server defaults (Settings) with any admin overrides;
auth stores the overrides and offers them through the `LimitsPort` (see hooks.py), so a
service reads them without knowing where they live. A limit reached is RESOURCE_EXHAUSTED
with a `QuotaFailure` naming it (`quota_exceeded`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Protocol

from server.config import Settings
from server.core.errors import QuotaViolation, ResourceExhausted

if TYPE_CHECKING:
    from server.core.hooks import Port


@dataclass(frozen=True, slots=True)
class UserLimits:
    """One user's effective limits. `overridden` names the fields an admin set."""

    max_concurrent_execs: int
    max_sandboxes: int
    max_concurrent_streams: int
    max_active_runs: int
    max_artifact_bytes: int
    overridden: frozenset[str] = frozenset()

    @classmethod
    def defaults(cls, settings: Settings) -> UserLimits:
        return cls(
            max_concurrent_execs=settings.user_max_concurrent_execs,
            max_sandboxes=settings.user_max_sandboxes,
            max_concurrent_streams=settings.user_max_concurrent_streams,
            max_active_runs=settings.runs_per_user,
            max_artifact_bytes=settings.user_max_artifact_bytes,
        )


LIMIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(UserLimits) if f.name != "overridden")


class LimitsPort(Protocol):
    """Offered by AuthService; read by every service that enforces a share."""

    async def limits_of(self, user_id: uuid.UUID) -> UserLimits:
        """The user's effective limits (cached for a few seconds: an override made on
        another server takes effect within `user_limits_cache_seconds`)."""
        ...


class DefaultLimits:
    """The server defaults for everyone: what a server without AuthService enforces."""

    def __init__(self, settings: Settings) -> None:
        self._limits = UserLimits.defaults(settings)

    async def limits_of(self, user_id: uuid.UUID) -> UserLimits:
        return self._limits


class UserShares:
    """A `LimitsPort` for a service to hold at build time: reads through the port once a
    module offers it, else the server defaults (a server built without AuthService)."""

    def __init__(self, port: Port[LimitsPort], settings: Settings) -> None:
        self._port = port
        self._defaults = DefaultLimits(settings)

    async def limits_of(self, user_id: uuid.UUID) -> UserLimits:
        source: LimitsPort = self._port.get() if self._port.provided else self._defaults
        return await source.limits_of(user_id)


def quota_exceeded(
    *,
    limit: str,
    user_id: uuid.UUID,
    allowed: int,
    used: int,
    reason: str,
    message: str,
    what: str,
) -> ResourceExhausted:
    """RESOURCE_EXHAUSTED for a user's share `limit` (a `UserLimits` field): `used` of
    `allowed` `what` (e.g. "live sandboxes"). ErrorInfo metadata and the QuotaFailure
    violation both name the limit, so a client can tell which one to ask an admin about."""
    return ResourceExhausted(
        message=message,
        reason=reason,
        metadata={"quota": limit, "limit": str(allowed), "used": str(used)},
        quota_violations=[
            QuotaViolation(
                subject=f"user:{user_id}", description=f"{limit}: {used} of {allowed} {what}"
            )
        ],
    )
