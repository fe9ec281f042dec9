"""Typed domain errors. Domain code raises these; the call interceptor turns them into a
gRPC status with google.rpc details (see server/core/status.py).

Each error has a stable machine-readable `reason` (ErrorInfo.reason) and a message that is
safe to show to the caller: never put secrets, tokens or internal details in either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any


class Code(Enum):
    """The subset of google.rpc.Code that domain errors use (values match google.rpc.Code)."""

    CANCELLED = 1
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    subject: str
    description: str


@dataclass(eq=False)
class ForgeError(Exception):
    """Base of every error a client is meant to see."""

    message: str
    reason: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    code = Code.INTERNAL

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"


@dataclass(eq=False)
class InvalidArgument(ForgeError):
    """Bad input. `violations` name each offending field (google.rpc.BadRequest)."""

    message: str = "the request is invalid"
    reason: str = "INVALID_ARGUMENT"
    violations: Sequence[FieldViolation] = ()
    code = Code.INVALID_ARGUMENT

    @classmethod
    def of(
        cls, violations: Sequence[FieldViolation], reason: str = "INVALID_ARGUMENT"
    ) -> InvalidArgument:
        described = "; ".join(f"{v.field}: {v.description}" for v in violations)
        return cls(
            message=described or "the request is invalid", reason=reason, violations=violations
        )


@dataclass(eq=False)
class NotFound(ForgeError):
    code = Code.NOT_FOUND


@dataclass(eq=False)
class AlreadyExists(ForgeError):
    code = Code.ALREADY_EXISTS


@dataclass(eq=False)
class PermissionDenied(ForgeError):
    code = Code.PERMISSION_DENIED


@dataclass(eq=False)
class Unauthenticated(ForgeError):
    code = Code.UNAUTHENTICATED


@dataclass(eq=False)
class FailedPrecondition(ForgeError):
    code = Code.FAILED_PRECONDITION


@dataclass(eq=False)
class Aborted(ForgeError):
    """A conflict to retry; `retry_after` (RetryInfo) says when, if that is known."""

    retry_after: timedelta | None = None
    code = Code.ABORTED


@dataclass(eq=False)
class ResourceExhausted(ForgeError):
    """Rate limits carry `retry_after` (RetryInfo); quotas carry `quota_violations`."""

    retry_after: timedelta | None = None
    quota_violations: Sequence[QuotaViolation] = ()
    code = Code.RESOURCE_EXHAUSTED


@dataclass(eq=False)
class Unavailable(ForgeError):
    retry_after: timedelta | None = None
    code = Code.UNAVAILABLE


@dataclass(eq=False)
class Unimplemented(ForgeError):
    code = Code.UNIMPLEMENTED


@dataclass(eq=False)
class DeadlineExceeded(ForgeError):
    code = Code.DEADLINE_EXCEEDED


@dataclass(eq=False)
class Cancelled(ForgeError):
    """Stopped on request (e.g. CancelAnswer), not by the caller of the stream itself."""

    code = Code.CANCELLED


class Violations:
    """Collects field violations while validating a request, then raises them all at once."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field_path: str, description: str) -> None:
        self._items.append(FieldViolation(field_path, description))

    def check(self, condition: bool, field_path: str, description: str) -> None:
        if not condition:
            self.add(field_path, description)

    def __bool__(self) -> bool:
        return bool(self._items)

    def raise_if_any(self, reason: str = "INVALID_ARGUMENT") -> None:
        if self._items:
            raise InvalidArgument.of(list(self._items), reason=reason)


_KINDS: tuple[type[ForgeError], ...] = (
    InvalidArgument,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    Unauthenticated,
    FailedPrecondition,
    Aborted,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
    DeadlineExceeded,
)


def error_document(error: ForgeError) -> dict[str, Any]:
    """An error as stored (a failed answer, a retried call's result), JSON-ready."""
    return {
        "code": error.code.value,
        "reason": error.reason,
        "message": error.message,
        "metadata": dict(error.metadata),
    }


def error_from_document(document: Mapping[str, Any]) -> ForgeError:
    """The error `error_document` stored, to be told again."""
    code = Code(int(document["code"]))
    message, reason = str(document["message"]), str(document["reason"])
    metadata = {str(k): str(v) for k, v in dict(document.get("metadata") or {}).items()}
    for kind in _KINDS:
        if kind.code is code:
            return kind(message, reason, metadata)
    return ForgeError(message, reason, metadata)
