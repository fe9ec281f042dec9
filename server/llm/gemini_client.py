"""The Gemini API client, built in one place for chat (gemini.py) and images (images.py),
and how its failures map to the errors a client sees.

The SDK is given our own httpx2 client, so tests and production take the same transport
(the SDK would otherwise switch to aiohttp whenever aiohttp happens to be installed) and so
callers can close HTTP responses themselves. The SDK's own retries are off: the callers
retry (retry.py), or do not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import SecretStr

from server.config import Settings
from server.llm.errors import (
    ProviderFailure,
    failure_for_protocol,
    failure_for_status,
    failure_for_transport,
    parse_duration,
    parse_retry_after,
)

NAME = "gemini"
API_VERSION = "v1beta"
"""Pinned: the SDK's default follows the GOOGLE_GENAI_API_VERSION environment variable."""

ResponseHook = Callable[[httpx2.Response], Awaitable[None]]


class GeminiClient:
    """A `genai.Client` over an httpx2 client of our own; `aclose()` releases both."""

    def __init__(
        self,
        settings: Settings,
        *,
        response_hooks: Sequence[ResponseHook] = (),
        api_key: SecretStr | None = None,
    ) -> None:
        """`api_key`: a caller's own key instead of Settings.gemini_api_key."""
        key = api_key or settings.gemini_api_key
        if key is None:
            raise ValueError("gemini needs Settings.gemini_api_key")
        timeout = settings.provider_timeout_seconds
        self._http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout), event_hooks={"response": list(response_hooks)}
        )
        self.sdk = genai.Client(
            api_key=key.get_secret_value(),
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=settings.gemini_base_url,
                api_version=API_VERSION,
                # Per request; the SDK passes None as "no timeout at all" to httpx.
                timeout=max(int(timeout * 1000), 1),
                httpx_async_client=self._http,
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    @property
    def models(self) -> genai.models.AsyncModels:
        return self.sdk.aio.models

    async def aclose(self) -> None:
        await self.sdk.aio.aclose()
        self.sdk.close()  # the SDK's own (unused) sync client
        await self._http.aclose()


# --- errors -----------------------------------------------------------------------------

CALL_ERRORS = (genai_errors.APIError, httpx2.HTTPError, ValueError)
"""What a Gemini call raises for a failure of the provider or the transport."""


def _header_getter(response: object) -> Callable[[str], str | None]:
    headers = getattr(response, "headers", None)
    if not isinstance(headers, Mapping | httpx2.Headers):
        return lambda _name: None
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    return lowered.get


def _error_details(body: object, kind: str) -> list[dict[str, object]]:
    """The google.rpc `details` entries of type `kind` (e.g. "RetryInfo") in an error body."""
    error = body.get("error", body) if isinstance(body, dict) else None
    entries = error.get("details") if isinstance(error, dict) else None
    return [
        entry
        for entry in (entries if isinstance(entries, list) else ())
        if isinstance(entry, dict) and str(entry.get("@type", "")).endswith(f".{kind}")
    ]


def _retry_info(body: object) -> float | None:
    """`retryDelay` of a google.rpc.RetryInfo in the error body, in seconds."""
    for entry in _error_details(body, "RetryInfo"):
        delay = entry.get("retryDelay")
        if isinstance(delay, str):
            return parse_duration(delay)
    return None


def _rejects_the_key(body: object) -> bool:
    """Gemini refuses a bad key with 400 INVALID_ARGUMENT and ErrorInfo API_KEY_INVALID."""
    return any(
        str(entry.get("reason", "")).startswith("API_KEY_")
        for entry in _error_details(body, "ErrorInfo")
    )


def map_error(error: Exception) -> ProviderFailure:
    if isinstance(error, genai_errors.APIError):
        status = error.code if isinstance(error.code, int) else 500
        if status == 400 and _rejects_the_key(error.details):
            status = 401
        retry_after = _retry_info(error.details)
        if retry_after is None:
            retry_after = parse_retry_after(_header_getter(error.response))
        return failure_for_status(NAME, status, retry_after=retry_after)
    if isinstance(error, httpx2.TimeoutException):
        return failure_for_transport(NAME, "timed out")
    if isinstance(error, httpx2.TransportError):
        return failure_for_transport(NAME, "the connection failed")
    return failure_for_protocol(NAME, type(error).__name__)
