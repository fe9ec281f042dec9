"""The errors a deploy target raises, with stable reasons.

Messages name the target and what went wrong (an HTTP status, an S3 error code, a git exit
status), never a token, and never the target's own words, which may quote what it rejected.
"""

from __future__ import annotations

from datetime import timedelta

from server.core.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    ForgeError,
    ResourceExhausted,
    Unavailable,
)

REFUSED = "DEPLOY_TARGET_REFUSED"
"""The target refused the credentials (bad, expired or lacking a permission)."""
NOT_FOUND = "DEPLOY_TARGET_NOT_FOUND"
"""The site, project, bucket or repository the target settings name does not exist."""
REJECTED = "DEPLOY_TARGET_REJECTED"
"""The target answered a request with another client error."""
FAILED = "DEPLOY_TARGET_FAILED"
"""The target accepted the files but failed to make the deployment ready."""
RATE_LIMITED = "DEPLOY_TARGET_RATE_LIMITED"
UNAVAILABLE = "DEPLOY_TARGET_UNAVAILABLE"
TIMED_OUT = "DEPLOY_TARGET_TIMED_OUT"

DEFAULT_RETRY_AFTER = timedelta(seconds=5)


def refused(target: str, detail: str) -> ForgeError:
    return FailedPrecondition(
        message=f"{target} refused the deploy credentials ({detail}); check the token "
        "and its permissions",
        reason=REFUSED,
        metadata={"target": target},
    )


def not_found(target: str, what: str) -> ForgeError:
    return FailedPrecondition(
        message=f"{target}: {what} was not found", reason=NOT_FOUND, metadata={"target": target}
    )


def rejected(target: str, detail: str) -> ForgeError:
    return FailedPrecondition(
        message=f"{target} rejected the deployment ({detail})",
        reason=REJECTED,
        metadata={"target": target},
    )


def failed(target: str, state: str) -> ForgeError:
    return FailedPrecondition(
        message=f"{target} could not make the deployment ready (state {state})",
        reason=FAILED,
        metadata={"target": target},
    )


def rate_limited(target: str, retry_after: timedelta | None) -> ForgeError:
    return ResourceExhausted(
        message=f"{target} is rate limiting requests; retry later",
        reason=RATE_LIMITED,
        metadata={"target": target},
        retry_after=retry_after or DEFAULT_RETRY_AFTER,
    )


def unavailable(target: str, detail: str) -> ForgeError:
    return Unavailable(
        message=f"{target} is unreachable or failing ({detail}); retry later",
        reason=UNAVAILABLE,
        metadata={"target": target},
        retry_after=DEFAULT_RETRY_AFTER,
    )


def timed_out(target: str, seconds: float) -> ForgeError:
    return DeadlineExceeded(
        message=f"{target} did not make the deployment ready within {seconds:g} s",
        reason=TIMED_OUT,
        metadata={"target": target},
    )
