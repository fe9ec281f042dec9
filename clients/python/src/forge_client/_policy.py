"""When a failed call is tried again: the rules shared by the async and sync clients."""

from __future__ import annotations

import dataclasses
import random
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from forge_client.errors import Code, ForgeError

M = TypeVar("M")

_READ_PREFIXES = ("Get", "List", "Watch", "Download", "Export", "Read")
SERVER_BUSY = "SERVER_BUSY"


class Step(Enum):
    RAISE = "raise"
    RETRY = "retry"
    REFRESH = "refresh"


@dataclass(frozen=True)
class RetryPolicy:
    """UNAVAILABLE is retried for idempotent calls (reads, and calls carrying a request_id),
    and SERVER_BUSY (refused before any work, e.g. a chat under a burst) for every call, at
    most `attempts` times in all, with exponential backoff (or the server's RetryInfo)."""

    attempts: int = 4
    base_delay: float = 0.1
    max_delay: float = 2.0

    def backoff(self, attempt: int, error: ForgeError) -> float:
        if error.retry_delay is not None:
            return error.retry_delay.total_seconds()
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


def with_request_id(request: M) -> M:
    """A copy of a request with a fresh request_id, when it has that field and it is empty,
    so that the server can recognise a retry of it (AIP-155)."""
    if dataclasses.is_dataclass(request) and getattr(request, "request_id", None) == "":
        return dataclasses.replace(request, request_id=str(uuid.uuid4()))  # type: ignore[type-var]
    return request


def is_idempotent(route: str, request: object) -> bool:
    method = route.rsplit("/", 1)[-1]
    return method.startswith(_READ_PREFIXES) or bool(getattr(request, "request_id", ""))


def next_step(
    error: ForgeError,
    *,
    attempt: int,
    idempotent: bool,
    policy: RetryPolicy,
    can_refresh: bool,
    refreshed: bool,
) -> Step:
    """What to do after attempt number `attempt` (0-based) failed with `error`."""
    if (
        error.code == Code.UNAUTHENTICATED
        and error.reason == "TOKEN_EXPIRED"
        and can_refresh
        and not refreshed
    ):
        return Step.REFRESH
    if attempt + 1 >= policy.attempts:
        return Step.RAISE
    if error.code == Code.UNAVAILABLE and idempotent:
        return Step.RETRY
    if error.code == Code.RESOURCE_EXHAUSTED and error.reason == SERVER_BUSY:
        return Step.RETRY  # refused before it started: safe to send again
    return Step.RAISE


@dataclass
class Attempts:
    """Where one call's tries stand: the retries made so far, whether the token was renewed."""

    idempotent: bool
    policy: RetryPolicy
    retries: int = 0
    refreshed: bool = False

    def after(self, error: ForgeError, *, can_refresh: bool) -> tuple[Step, float]:
        """The step after a try failed with `error`, and the pause before it (retries)."""
        step = next_step(
            error,
            attempt=self.retries,
            idempotent=self.idempotent,
            policy=self.policy,
            can_refresh=can_refresh,
            refreshed=self.refreshed,
        )
        pause = self.policy.backoff(self.retries, error) if step is Step.RETRY else 0.0
        self.refreshed = self.refreshed or step is Step.REFRESH
        self.retries += step is Step.RETRY
        return step, pause
