"""Retries before the first event, with jittered exponential backoff (tenacity).

A provider attempt is an async generator of events that raises `ProviderFailure`.
`stream_with_retries` opens attempts until one produces its first event (or a failure is
final), then relays that attempt's events. Only then is anything yielded, so a retried
attempt never duplicates text the consumer already has. After the first event a failure is
raised as `ProviderStreamError`.

Backoff: base * 2^n (capped at max) plus up to `base` of jitter; a provider's retry-after is
honoured when it is no longer than the cap, and ends the retries at once when it is longer
(the client is better served by RESOURCE_EXHAUSTED with that delay than by a long wait).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from server.config import Settings
from server.core.metrics import provider_failed, provider_request
from server.llm.base import ProviderEvent
from server.llm.errors import ProviderFailure, ProviderStreamError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int
    """Attempts in all, the first included."""
    base_delay: float
    max_delay: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            attempts=settings.provider_retry_attempts,
            base_delay=settings.provider_retry_base_delay_seconds,
            max_delay=settings.provider_retry_max_delay_seconds,
        )


def _failure(state: RetryCallState) -> ProviderFailure | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    error = outcome.exception()
    return error if isinstance(error, ProviderFailure) else None


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, ProviderFailure) and error.transient


class _Backoff:
    def __init__(self, policy: RetryPolicy) -> None:
        self._exponential = wait_exponential_jitter(
            initial=policy.base_delay, max=policy.max_delay, jitter=policy.base_delay
        )

    def __call__(self, state: RetryCallState) -> float:
        delay = self._exponential(state)
        failure = _failure(state)
        if failure is not None and failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        return delay


class _RetryAfterTooLong(stop_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._max_delay = policy.max_delay

    def __call__(self, state: RetryCallState) -> bool:
        failure = _failure(state)
        return (
            failure is not None
            and failure.retry_after is not None
            and failure.retry_after > self._max_delay
        )


def _log_retry(provider: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        failure = _failure(state)
        delay = state.upcoming_sleep
        log.warning(
            "provider %s attempt %d failed (%s); retrying in %.2fs",
            provider,
            state.attempt_number,
            failure.error.reason if failure else "?",
            delay,
        )

    return before_sleep


async def stream_with_retries(
    open_attempt: Callable[[], AsyncGenerator[ProviderEvent, None]],
    policy: RetryPolicy,
    *,
    provider: str,
) -> AsyncGenerator[ProviderEvent, None]:
    """Relays the events of the first attempt that produces one (see the module docstring).

    Raises the final failure's `ForgeError` when no attempt produced an event, and
    `ProviderStreamError` when an attempt failed after its first event.
    """
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | _RetryAfterTooLong(policy),
        wait=_Backoff(policy),
        retry=retry_if_exception(_is_transient),
        before_sleep=_log_retry(provider),
        reraise=True,
    )
    events: AsyncGenerator[ProviderEvent, None] | None = None
    first: ProviderEvent | None = None
    started = time.perf_counter()
    try:
        async for attempt in retrying:
            with attempt:
                events = open_attempt()
                first = await anext(events, None)
    except ProviderFailure as failure:
        provider_request(provider, time.perf_counter() - started, failure.error.reason)
        raise failure.error from None
    provider_request(provider, time.perf_counter() - started)
    if events is None or first is None:
        return
    try:
        yield first
        async for event in events:
            yield event
    except ProviderFailure as failure:
        provider_failed(provider, failure.error.reason)
        raise ProviderStreamError(failure.error) from None
    finally:
        await events.aclose()
