"""One exception type for every failed call: ForgeError, with the server's error details
decoded into this package's own types (no googleapis-common-protos needed)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from forge_client._proto.google import protobuf as _protobuf
from forge_client._proto.google import rpc as _rpc

STATUS_DETAILS_KEY = "grpc-status-details-bin"
REQUEST_ID_KEY = "x-request-id"
_TYPE_PREFIX = "type.googleapis.com/"


class Code(enum.IntEnum):
    """gRPC status codes."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @classmethod
    def of(cls, value: int) -> Code:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request (google.rpc.BadRequest)."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True)
class QuotaViolation:
    """One exceeded quota (google.rpc.QuotaFailure)."""

    subject: str
    description: str


@dataclass(frozen=True)
class ErrorDetails:
    """What google.rpc.Status details say, in plain types."""

    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    quota_violations: tuple[QuotaViolation, ...] = ()
    retry_delay: timedelta | None = None
    server_request_id: str = ""


class ForgeError(Exception):
    """A failed call: its status `code`, `message`, the stable `reason` (ErrorInfo) with its
    `domain` and `metadata`, `field_violations` (BadRequest), `quota_violations`,
    `retry_delay` (RetryInfo) and the `request_id` to quote when reporting it."""

    def __init__(
        self,
        code: Code,
        message: str,
        details: ErrorDetails | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(code, message)
        found = details or ErrorDetails()
        self.code = code
        self.message = message
        self.reason = found.reason
        self.domain = found.domain
        self.metadata: Mapping[str, str] = found.metadata
        self.field_violations = found.field_violations
        self.quota_violations = found.quota_violations
        self.retry_delay = found.retry_delay
        self.request_id = request_id or found.server_request_id or None

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.reason:
            text += f" [{self.reason}]"
        for violation in self.field_violations:
            text += f"\n  {violation.field}: {violation.description}"
        if self.request_id:
            text += f"\n  (request id {self.request_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"ForgeError(code={self.code.name}, reason={self.reason!r}, message={self.message!r})"
        )


def decode_details(data: bytes | None) -> ErrorDetails:
    """Decodes a `grpc-status-details-bin` value (a serialized google.rpc.Status); details of
    unknown types are skipped, and undecodable bytes give empty details."""
    if not data:
        return ErrorDetails()
    try:
        status = _rpc.Status.parse(data)
    except Exception:  # a malformed trailer must not hide the status itself
        return ErrorDetails()
    values: dict[str, object] = {}
    for item in status.details:
        _read_detail(item, values)
    return ErrorDetails(**values)  # type: ignore[arg-type]


def _read_detail(item: _protobuf.Any, values: dict[str, object]) -> None:
    name = item.type_url.removeprefix(_TYPE_PREFIX)
    try:
        if name == "google.rpc.ErrorInfo":
            info = _rpc.ErrorInfo.parse(item.value)
            values.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        elif name == "google.rpc.BadRequest":
            bad = _rpc.BadRequest.parse(item.value)
            values["field_violations"] = tuple(
                FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
            )
        elif name == "google.rpc.QuotaFailure":
            quota = _rpc.QuotaFailure.parse(item.value)
            values["quota_violations"] = tuple(
                QuotaViolation(v.subject, v.description) for v in quota.violations
            )
        elif name == "google.rpc.RetryInfo":
            retry = _rpc.RetryInfo.parse(item.value)
            if retry.retry_delay is not None:
                values["retry_delay"] = retry.retry_delay
        elif name == "google.rpc.RequestInfo":
            values["server_request_id"] = _rpc.RequestInfo.parse(item.value).request_id
    except Exception:  # noqa: S110 - one undecodable detail leaves the others readable
        pass
