"""The RPCs the real server binds, one call of any of them with a deadline, and what a
call's outcome must look like."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from server.services import SERVICE_MODULES

DEADLINE = 15.0
"""A call that has not answered (or, for a stream, produced an event or ended) by then hangs."""
QUIET = 3.0
"""A stream that is producing events is read this long; a live one (WatchRun) then cut."""
MAX_EVENTS = 200
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The server's max_message_bytes: bigger requests are refused by grpc itself."""


@dataclass(frozen=True)
class Rpc:
    service: ServiceDescriptor
    method: MethodDescriptor

    @property
    def name(self) -> str:
        return str(self.method.name)

    @property
    def path(self) -> str:
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def request_class(self) -> type[Message]:
        return GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[Message]:
        return GetMessageClass(self.method.output_type)

    @property
    def client_streaming(self) -> bool:
        return bool(self.method.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)


def _services_of(module: ModuleType) -> list[ServiceDescriptor]:
    """The services a module's generated `*_pb2` imports declare (each service module
    binds the services of the protos it imports)."""
    found: list[ServiceDescriptor] = []
    for value in vars(module).values():
        descriptor = getattr(value, "DESCRIPTOR", None)
        if isinstance(value, ModuleType) and value.__name__.endswith("_pb2") and descriptor:
            found.extend(descriptor.services_by_name.values())
    return found


def bound_rpcs() -> list[Rpc]:
    """Every RPC of every service of the server's modules (server/services.py)."""
    rpcs: list[Rpc] = []
    for builder in SERVICE_MODULES:
        for service in _services_of(sys.modules[builder.__module__]):
            rpcs.extend(Rpc(service, method) for method in service.methods)
    return rpcs


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    reason: str | None
    events: int = 0
    hung: bool = False

    def __str__(self) -> str:
        hung = " HUNG" if self.hung else ""
        return f"{self.code.name} reason={self.reason!r} events={self.events}{hung}: {self.details}"


def _reason(error: grpc.RpcError) -> str | None:
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return None


def _failed(error: grpc.RpcError, events: int = 0) -> Outcome:
    code: grpc.StatusCode = error.code()
    return Outcome(code, str(error.details()), _reason(error), events)


def _read_stream(stream: Any) -> Outcome:
    """Reads a server stream until it ends; cancels it DEADLINE after the call started if
    it produced nothing (a hang), or QUIET after its first event (a live stream)."""
    events = 0
    cancelled = threading.Event()

    def cut() -> None:
        cancelled.set()
        stream.cancel()

    timer = threading.Timer(DEADLINE, cut)
    timer.start()
    try:
        for _ in stream:
            events += 1
            if events == 1:
                timer.cancel()
                timer = threading.Timer(QUIET, cut)
                timer.start()
            if events >= MAX_EVENTS:
                cut()
                break
    except grpc.RpcError as error:
        if not cancelled.is_set():
            return _failed(error, events)
    finally:
        timer.cancel()
    if cancelled.is_set():
        return Outcome(grpc.StatusCode.OK, "cut by the fuzzer", None, events, hung=events == 0)
    return Outcome(grpc.StatusCode.OK, "", None, events)


def call(
    channel: grpc.Channel,
    rpc: Rpc,
    request: Message | bytes | Sequence[Message | bytes],
    metadata: tuple[tuple[str, str], ...],
) -> Outcome:
    """Sends one request (a sequence of them for a client stream); bytes are sent as they
    are, so they may be anything but a valid message."""
    raw = isinstance(request, bytes) or (
        isinstance(request, Sequence) and any(isinstance(item, bytes) for item in request)
    )
    serializer = None if raw else rpc.request_class.SerializeToString
    arguments: dict[str, Any] = {
        "request_serializer": serializer,
        "response_deserializer": rpc.response_class.FromString,
    }
    # grpc's deadline is a backstop behind our own (a stream is cut before it).
    timeout = DEADLINE + 5
    started = time.monotonic()
    try:
        if rpc.client_streaming:
            assert isinstance(request, Sequence)
            upload = channel.stream_unary(rpc.path, **arguments)
            requests: Iterator[Any] = iter(list(request))
            upload(requests, metadata=metadata, timeout=timeout)
        elif rpc.server_streaming:
            stream = channel.unary_stream(rpc.path, **arguments)
            return _read_stream(stream(request, metadata=metadata, timeout=timeout))
        else:
            channel.unary_unary(rpc.path, **arguments)(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as error:
        outcome = _failed(error)
        if outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            outcome.hung = time.monotonic() - started >= DEADLINE
        return outcome
    return Outcome(grpc.StatusCode.OK, "", None)


def request_size(request: Message | bytes | Sequence[Message | bytes]) -> int:
    items = (
        request if isinstance(request, Sequence) and not isinstance(request, bytes) else [request]
    )
    return max(
        (len(item) if isinstance(item, bytes) else item.ByteSize() for item in items), default=0
    )


def check(rpc: Rpc, outcome: Outcome, size: int) -> None:
    """What every call must show, whatever was sent."""
    assert not outcome.hung, f"{rpc.path} hung: {outcome}"
    assert outcome.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
        f"{rpc.path}: {outcome}"
    )
    if outcome.code == grpc.StatusCode.OK:
        return
    if outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED and size > MAX_MESSAGE_BYTES:
        return  # refused by grpc before any of our code ran: it has no details to give
    assert outcome.reason, f"{rpc.path}: an error without an ErrorInfo reason: {outcome}"
