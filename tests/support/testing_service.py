"""TestingService (tests only): echoes, fails on request, and streams ticks (through
`server_stream`, as Chat and Exec do)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc
from forge.testing.v1 import testing_pb2, testing_pb2_grpc

from server.core import errors
from server.core.binding import ServiceBinding
from server.core.context import current_call
from server.core.module import BuildContext, ServiceModule
from server.core.status import to_status_proto
from server.core.streaming import server_stream
from server.services import SERVICE_MODULES

_ERRORS_BY_CODE: dict[int, type[errors.ForgeError]] = {
    cls.code.value: cls
    for cls in (
        errors.NotFound,
        errors.AlreadyExists,
        errors.PermissionDenied,
        errors.Unauthenticated,
        errors.FailedPrecondition,
        errors.Aborted,
        errors.ResourceExhausted,
        errors.Unavailable,
        errors.Unimplemented,
        errors.DeadlineExceeded,
    )
}

MAX_TICKS_INTERVAL_MS = 60_000


def _failure(failure: testing_pb2.Failure) -> errors.ForgeError:
    message = f"failing on request with code {failure.code}"
    reason = failure.reason or "REQUESTED_FAILURE"
    if failure.code == errors.Code.INVALID_ARGUMENT.value or failure.field:
        field = failure.field or "fail_with.field"
        return errors.InvalidArgument.of([errors.FieldViolation(field, message)], reason=reason)
    if failure.code == errors.Code.INTERNAL.value:
        raise RuntimeError("deliberate bug requested through TestingService.Echo")
    error_class = _ERRORS_BY_CODE.get(failure.code)
    if error_class is None:
        return errors.InvalidArgument.of(
            [errors.FieldViolation("fail_with.code", "not a code Echo can fail with")]
        )
    return error_class(message, reason)


class TestingService(testing_pb2_grpc.TestingServiceServicer):
    # Left as the generated base's own method: the call interceptor answers it UNIMPLEMENTED
    # (ServiceBinding.unimplemented_paths), as it would any RPC a server does not build.
    NotBuilt = testing_pb2_grpc.TestingServiceServicer.NotBuilt

    async def Echo(
        self, request: testing_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> testing_pb2.EchoResponse:
        if request.HasField("fail_with"):
            raise _failure(request.fail_with)
        call = current_call()
        return testing_pb2.EchoResponse(
            message=request.message,
            request_id=call.request_id,
            caller_id=str(call.caller.user_id) if call.caller else "",
        )

    async def StreamTicks(
        self, request: testing_pb2.StreamTicksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[testing_pb2.StreamTicksResponse]:
        violations = errors.Violations()
        violations.check(request.count >= 0, "count", "must not be negative")
        violations.check(
            0 <= request.interval_ms <= MAX_TICKS_INTERVAL_MS,
            "interval_ms",
            f"must be between 0 and {MAX_TICKS_INTERVAL_MS}",
        )
        violations.raise_if_any()
        async with server_stream(_ticks(request), _tick_message, _tick_error) as messages:
            async for message in messages:
                yield message


async def _ticks(request: testing_pb2.StreamTicksRequest) -> AsyncGenerator[int | None, None]:
    """Tick numbers, then None (completed)."""
    tick = 0
    while request.count == 0 or tick < request.count:
        if tick:
            await asyncio.sleep(request.interval_ms / 1000)
        tick += 1
        yield tick
    yield None


def _tick_message(tick: int | None, seq: int) -> testing_pb2.StreamTicksResponse:
    if tick is None:
        return testing_pb2.StreamTicksResponse(seq=seq, completed=True)
    return testing_pb2.StreamTicksResponse(seq=seq, tick=tick)


def _tick_error(error: errors.ForgeError, seq: int) -> testing_pb2.StreamTicksResponse:
    return testing_pb2.StreamTicksResponse(seq=seq, error=to_status_proto(error))


def build(ctx: BuildContext) -> ServiceModule:
    """The test-only module: tests add it to the server's modules (never in production)."""
    return ServiceModule(
        name="testing",
        bindings=[
            ServiceBinding.of(
                testing_pb2,
                testing_pb2_grpc,
                "TestingService",
                TestingService(),
                public_methods=("Echo", "StreamTicks", "NotBuilt"),
            )
        ],
    )


TESTING_SERVICE = "forge.testing.v1.TestingService"

TEST_MODULES = (*SERVICE_MODULES, build)
"""The production modules plus TestingService: what the tests' servers serve."""
