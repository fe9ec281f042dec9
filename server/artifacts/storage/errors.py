"""The typed errors the blob stores raise, with their stable reasons (ErrorInfo.reason).

| reason                 | error              | when                                           |
|------------------------|--------------------|------------------------------------------------|
| UPLOAD_TOO_LARGE       | InvalidArgument    | a stream passes `max_bytes` (or declares more) |
| CHECKSUM_MISMATCH      | InvalidArgument    | bytes differ from the expected SHA-256 or size |
| INVALID_SHA256         | InvalidArgument    | a blob key is not 64 hex digits                |
| OFFSET_OUT_OF_RANGE    | InvalidArgument    | `open(offset=…)` past the end of the blob      |
| INVALID_EXPIRY         | InvalidArgument    | presign expiry outside 1 s … 7 days            |
| BLOB_NOT_FOUND         | NotFound           | no blob with that SHA-256                      |
| PRESIGN_UNSUPPORTED    | FailedPrecondition | presigned URLs asked of the local store        |
| BLOB_STORE_UNAVAILABLE | Unavailable        | the disk or S3 failed (details are logged only)|

BLOB_STORE_UNAVAILABLE carries a RetryInfo when S3 could not be reached (refused, reset,
timed out, a 5xx or SlowDown answer): that passes, and health says when (storage/health.py).
A store that answers but refuses us (credentials, a missing bucket) or a failing disk gets
no RetryInfo: retrying soon would not help.

UPLOAD_TOO_LARGE is INVALID_ARGUMENT, not RESOURCE_EXHAUSTED: the limit is a fixed property of
the request, true whatever the state of the system (google.rpc.Code's own test), and REST
callers should get 400, not the 429 "retry later" that Envoy makes of RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

from datetime import timedelta

from server.core.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)

UPLOAD_TOO_LARGE = "UPLOAD_TOO_LARGE"
CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
INVALID_SHA256 = "INVALID_SHA256"
OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
INVALID_EXPIRY = "INVALID_EXPIRY"
BLOB_NOT_FOUND = "BLOB_NOT_FOUND"
PRESIGN_UNSUPPORTED = "PRESIGN_UNSUPPORTED"
BLOB_STORE_UNAVAILABLE = "BLOB_STORE_UNAVAILABLE"
RETRY_AFTER = timedelta(seconds=1)


def upload_too_large(max_bytes: int) -> InvalidArgument:
    return InvalidArgument(
        message=f"the content is larger than the limit of {max_bytes} bytes",
        reason=UPLOAD_TOO_LARGE,
        metadata={"max_bytes": str(max_bytes)},
    )


def sha256_mismatch(expected: str, actual: str) -> InvalidArgument:
    return InvalidArgument(
        message="the content does not match the expected SHA-256",
        reason=CHECKSUM_MISMATCH,
        metadata={"expected_sha256": expected, "actual_sha256": actual},
    )


def size_mismatch(expected: int, actual: int, *, at_least: bool = False) -> InvalidArgument:
    got = f"at least {actual}" if at_least else str(actual)
    return InvalidArgument(
        message=f"the content has {got} bytes, not the expected {expected}",
        reason=CHECKSUM_MISMATCH,
        metadata={"expected_size": str(expected), "actual_size": str(actual)},
    )


def invalid_sha256(field: str) -> InvalidArgument:
    return InvalidArgument.of(
        [FieldViolation(field, "must be a SHA-256 digest: 64 hexadecimal digits")],
        reason=INVALID_SHA256,
    )


def offset_out_of_range(offset: int, size: int) -> InvalidArgument:
    return InvalidArgument.of(
        [FieldViolation("offset", f"must be between 0 and the content size ({size})")],
        reason=OFFSET_OUT_OF_RANGE,
    )


def invalid_expiry(max_seconds: int) -> InvalidArgument:
    return InvalidArgument.of(
        [FieldViolation("expires", f"must be between 1 and {max_seconds} seconds")],
        reason=INVALID_EXPIRY,
    )


def blob_not_found() -> NotFound:
    return NotFound("content not found", BLOB_NOT_FOUND)


def presign_unsupported() -> FailedPrecondition:
    return FailedPrecondition(
        "download URLs need the S3 blob store; this server keeps content on local disk",
        PRESIGN_UNSUPPORTED,
    )


def store_unavailable(*, transient: bool = False) -> Unavailable:
    """`transient`: the store could not be reached, which passes (the answer has RetryInfo)."""
    return Unavailable(
        "the content store is unavailable, try again later",
        BLOB_STORE_UNAVAILABLE,
        retry_after=RETRY_AFTER if transient else None,
    )
