"""The HTTP side of API-driven targets (Netlify, Vercel): one aiohttp session per publish or
remove, bearer auth, a timeout on every call, retries where the API says to retry, and the
mapping of statuses to the errors of errors.py.

Retried: connection failures, timeouts, 408, 5xx, and 429 (after the `Retry-After` or
`X-RateLimit-Reset` the API sent, when that is within `max_retry_delay`; a longer wait ends
the retries at once with RESOURCE_EXHAUSTED carrying it, better for the caller than a stall).
A status the caller expects (e.g. Vercel's 400 `missing_files`) is returned, not raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from server.core.errors import ForgeError
from server.deployments.targets import errors

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class HttpOptions:
    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    """Whole-call limit of an API call."""
    upload_timeout: float = 300.0
    """Whole-call limit of one file upload."""
    attempts: int = 4
    """Tries per call, the first included."""
    base_retry_delay: float = 0.5
    max_retry_delay: float = 30.0
    poll_interval: float = 2.0
    """Between two looks at a deployment that is not ready yet."""
    ready_timeout: float = 600.0
    """How long a deployment may take to become ready once every file is there."""
    concurrency: int = 8
    """File uploads at a time."""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any
    """The decoded JSON body; None when there was none (or it was not JSON)."""


class _Retry(Exception):
    def __init__(self, error: ForgeError, delay: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date) or `X-RateLimit-Reset`
    (epoch seconds), if the response said."""
    now = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    return None


class HttpApi:
    """`async with HttpApi("Netlify", base_url, token, options) as api: await api.call(…)`."""

    def __init__(self, target: str, base_url: str, token: str, options: HttpOptions) -> None:
        self.target = target
        self.options = options
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        # Imported when first needed: aiohttp is ~7 MB that a server which never publishes
        # to Netlify or Vercel need not carry (tests/test_lazy_imports.py).
        import aiohttp

        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=self.options.request_timeout, sock_connect=self.options.connect_timeout
            ),
            raise_for_status=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        expect: Collection[int] = (),
        missing: str = "the resource",
    ) -> ApiResponse:
        """One API call, retried as the module docstring says. 2xx statuses and those in
        `expect` are returned; 404 (unless expected) raises NOT_FOUND naming `missing`."""
        delay = self.options.base_retry_delay
        for attempt in range(1, self.options.attempts + 1):
            try:
                return await self._attempt(
                    method, path, json, data, headers, params, expect, missing
                )
            except _Retry as retry:
                last = attempt == self.options.attempts
                wait = retry.delay if retry.delay is not None else delay
                if last or wait > self.options.max_retry_delay:
                    raise retry.error from None
                log.info(
                    "%s %s %s: retrying in %.1f s (%s)",
                    self.target,
                    method,
                    path,
                    wait,
                    retry.error.reason,
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.options.max_retry_delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        path: str,
        json: Any,
        data: bytes | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        expect: Collection[int],
        missing: str,
    ) -> ApiResponse:
        assert self._session is not None, "use HttpApi as an async context manager"
        import aiohttp

        all_headers = {"Authorization": f"Bearer {self._token}", **(headers or {})}
        timeout = None
        if data is not None:
            timeout = aiohttp.ClientTimeout(
                total=self.options.upload_timeout, sock_connect=self.options.connect_timeout
            )
        try:
            async with self._session.request(
                method,
                self._base_url + path,
                json=json,
                data=data,
                headers=all_headers,
                params=params,
                timeout=timeout,
            ) as response:
                body = await _json_body(response)
                status = response.status
                if 200 <= status < 300 or status in expect:
                    return ApiResponse(status, body)
                raise self._failure(status, response.headers, missing)
        except TimeoutError:
            raise _Retry(errors.unavailable(self.target, "no answer in time")) from None
        except aiohttp.ClientError:
            # The exception text can hold the URL; the status line of the target is enough.
            raise _Retry(errors.unavailable(self.target, "connection failed")) from None

    def _failure(self, status: int, headers: Mapping[str, str], missing: str) -> Exception:
        detail = f"HTTP {status}"
        if status in (401, 403):
            return errors.refused(self.target, detail)
        if status == 404:
            return errors.not_found(self.target, missing)
        if status == 429:
            after = retry_after_seconds(headers)
            error = errors.rate_limited(
                self.target, timedelta(seconds=after) if after is not None else None
            )
            return _Retry(error, after)
        if status == 408 or status >= 500:
            return _Retry(errors.unavailable(self.target, detail))
        return errors.rejected(self.target, detail)


async def _json_body(response: aiohttp.ClientResponse) -> Any:
    raw = await response.read()
    if not raw:
        return None
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


async def poll(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    interval: float,
    timeout: float,
    on_timeout: ForgeError,
) -> T:
    """Calls `fetch` until `done` says so (or raises `on_timeout` after `timeout` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        if asyncio.get_running_loop().time() + interval > deadline:
            raise on_timeout
        await asyncio.sleep(interval)
