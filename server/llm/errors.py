"""Provider failures, mapped to the errors a client sees.

Inside a provider, every SDK or transport failure becomes a `ProviderFailure`: the mapped
`ForgeError` plus whether it is worth retrying. retry.py retries transient ones before the
first event and raises the final `ForgeError`; after the first event it raises
`ProviderStreamError` instead, so the caller can keep (and mark failed) what it relayed.

Messages name the provider and the HTTP status only: never the provider's own message
(some providers quote the key they rejected), never the key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from server.core.errors import FailedPrecondition, ForgeError, ResourceExhausted, Unavailable

RATE_LIMITED = "PROVIDER_RATE_LIMITED"
AUTH_FAILED = "PROVIDER_AUTH_FAILED"
UNAVAILABLE = "PROVIDER_UNAVAILABLE"

DEFAULT_RATE_LIMIT_RETRY_AFTER = timedelta(seconds=1)
"""RetryInfo of a rate limit whose provider said nothing about when to come back."""

_TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


class ProviderFailure(Exception):
    """A failed provider call (raised inside a provider; retry.py consumes it)."""

    def __init__(
        self, error: ForgeError, *, transient: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.transient = transient
        self.retry_after = retry_after
        """Seconds the provider asked us to wait before retrying, if it said."""


class ProviderStreamError(Exception):
    """The provider failed after the stream had produced events (in-band error)."""

    def __init__(self, error: ForgeError) -> None:
        super().__init__(str(error))
        self.error = error


def is_transient_status(status: int) -> bool:
    return status in _TRANSIENT_STATUSES or status >= 500


def failure_for_status(
    provider: str, status: int, *, retry_after: float | None = None
) -> ProviderFailure:
    """Maps an HTTP status from a provider (or its in-stream equivalent)."""
    metadata = {"provider": provider, "http_status": str(status)}
    if status == 429:
        delay = (
            timedelta(seconds=retry_after)
            if retry_after is not None
            else DEFAULT_RATE_LIMIT_RETRY_AFTER
        )
        return ProviderFailure(
            ResourceExhausted(
                message=f"{provider} is rate limiting requests; retry later",
                reason=RATE_LIMITED,
                metadata=metadata,
                retry_after=delay,
            ),
            transient=True,
            retry_after=retry_after,
        )
    if status in (401, 403):
        return ProviderFailure(
            FailedPrecondition(
                message=f"{provider} refused the server's API key (HTTP {status}); "
                "an operator must fix the provider key",
                reason=AUTH_FAILED,
                metadata=metadata,
            ),
            transient=False,
        )
    transient = is_transient_status(status)
    return ProviderFailure(
        Unavailable(
            message=f"{provider} failed (HTTP {status})",
            reason=UNAVAILABLE,
            metadata=metadata,
            retry_after=timedelta(seconds=retry_after) if retry_after is not None else None,
        ),
        transient=transient,
        retry_after=retry_after,
    )


def failure_for_transport(provider: str, what: str) -> ProviderFailure:
    """A connection that failed, was reset or timed out: always worth retrying."""
    return ProviderFailure(
        Unavailable(
            message=f"{provider} could not be reached: {what}",
            reason=UNAVAILABLE,
            metadata={"provider": provider},
        ),
        transient=True,
    )


def failure_for_protocol(provider: str, what: str) -> ProviderFailure:
    """An answer we could not understand (or one that ended early)."""
    return ProviderFailure(
        Unavailable(
            message=f"{provider} sent an unusable answer: {what}",
            reason=UNAVAILABLE,
            metadata={"provider": provider},
        ),
        transient=True,
    )


def parse_retry_after(
    get: Callable[[str], str | None], *, now: Callable[[], datetime] | None = None
) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    raw_ms = get("retry-after-ms")
    if raw_ms:
        try:
            millis = float(raw_ms)
        except ValueError:
            millis = math.nan
        if math.isfinite(millis) and millis >= 0:
            return millis / 1000
    raw = get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or _utcnow)()).total_seconds()
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_duration(text: str) -> float | None:
    """A google.protobuf.Duration in JSON form ("17s", "0.5s") as seconds."""
    if not text.endswith("s"):
        return None
    try:
        seconds = float(text[:-1])
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _utcnow() -> datetime:
    return datetime.now(UTC)
