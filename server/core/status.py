"""Maps ForgeError to a grpc Status carrying google.rpc.Status details."""

from __future__ import annotations

from typing import cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.core.errors import (
    Aborted,
    ForgeError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)

ERROR_DOMAIN = "forge.dev"
MAX_TEXT = 1024
"""Longest message or description sent: a status travels in HTTP/2 headers (16 KiB at most
by default), and a message may repeat what the caller sent."""


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status_proto(error: ForgeError) -> status_pb2.Status:
    """The google.rpc.Status for a domain error (also used for in-band `error` events)."""
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=ERROR_DOMAIN, metadata=dict(error.metadata)
            )
        )
    ]
    if isinstance(error, InvalidArgument) and error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=_short(v.field), description=_short(v.description)
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    retry_after = getattr(error, "retry_after", None)
    if isinstance(error, ResourceExhausted | Unavailable | Aborted) and retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(retry_after)
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    if isinstance(error, ResourceExhausted) and error.quota_violations:
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=_short(v.subject), description=_short(v.description)
                        )
                        for v in error.quota_violations
                    ]
                )
            )
        )
    return status_pb2.Status(code=error.code.value, message=_short(error.message), details=details)


def to_grpc_status(error: ForgeError) -> grpc.Status:
    return cast(grpc.Status, rpc_status.to_status(to_status_proto(error)))


def internal_status(request_id: str) -> grpc.Status:
    """What a client sees for a bug: no internals, only the id to quote in a report."""
    return cast(
        grpc.Status,
        rpc_status.to_status(
            status_pb2.Status(
                code=code_pb2.INTERNAL,
                message=f"internal error (request id {request_id})",
                details=[
                    _pack(
                        error_details_pb2.ErrorInfo(
                            reason="INTERNAL",
                            domain=ERROR_DOMAIN,
                            metadata={"request_id": request_id},
                        )
                    )
                ],
            )
        ),
    )
