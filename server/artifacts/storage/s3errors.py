"""S3's failures as the blob store's errors.

Whatever S3 fails with reaches the caller as BLOB_STORE_UNAVAILABLE (a missing object is
BLOB_NOT_FOUND, decided where it is asked for, in s3.py). When S3 could not be reached
(refused, reset, timed out, a 5xx or SlowDown answer) the error carries a RetryInfo, one
warning is logged without a traceback (an outage must not flood the log) and the listeners
hear of it, so health probes at once. An S3 that answers but refuses us (credentials, a
missing bucket) is logged as an error: it is a misconfiguration, not an outage.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import ConnectionError as S3ConnectionError

from server.artifacts.storage.errors import store_unavailable
from server.core.errors import Unavailable

log = logging.getLogger(__name__)

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})

_S3_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError)
_UNREACHABLE = (
    S3ConnectionError,  # refused, connect timeout, proxy, TLS
    HTTPClientError,  # read timeout, connection closed, a body cut short
    IncompleteReadError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,  # the connection ended before the body did
)
_BUSY_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_unreachable(error: BaseException) -> bool:
    """Whether `error` says S3 cannot be reached right now (rather than refusing us)."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return int(status) >= 500 or error_code(error) in _BUSY_CODES
    return isinstance(error, _UNREACHABLE)


class S3Failures:
    """Maps the S3 errors raised inside `mapped()`; `on_unreachable` listeners run (at once,
    so they must not block) whenever one says S3 cannot be reached."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def on_unreachable(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    @contextlib.contextmanager
    def mapped(self) -> Iterator[None]:
        try:
            yield
        except _S3_ERRORS as error:
            raise self.unavailable(error) from error

    def unavailable(self, error: BaseException) -> Unavailable:
        if not is_unreachable(error):
            log.error("S3 blob store: %s", error)
            return store_unavailable()
        log.warning("S3 blob store unreachable", extra={"error": repr(error)})
        for listener in self._listeners:
            listener()
        return store_unavailable(transient=True)
