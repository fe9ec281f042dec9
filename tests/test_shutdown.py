"""SIGTERM: health goes NOT_SERVING at once, new calls are still accepted for the drain
delay, then refused; in-flight calls get the grace period, streams still open end with an
in-band SERVER_SHUTTING_DOWN `error` event before it runs out (over gRPC, through Envoy as
SSE, and a Chat, whose answer is kept as cancelled), and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2
from forge.testing.v1 import testing_pb2, testing_pb2_grpc
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.core.errors import Code, ForgeError
from server.core.shutdown import ShutdownSignal, serving_under
from server.core.streaming import server_stream
from server.db.embedded import EmbeddedPostgres
from tests.agents.support import (
    chat_call,
    error_reason,
    messages,
    new_conversation,
    new_team,
    read_events,
)
from tests.conftest import TEST_DESCRIPTOR
from tests.support.accounts import register
from tests.support.process import ServerProcess
from tests.support.rpc import error_info
from tests.support.testing_service import TESTING_SERVICE

GRACE_SECONDS = 2.0
DRAIN_SECONDS = 1.5
SHUTTING_DOWN = "SERVER_SHUTTING_DOWN"

Spawn = Callable[..., Awaitable[ServerProcess]]
T = TypeVar("T")


@pytest.fixture
async def spawn(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Spawn]:
    """Starts `python -m tests.support.serve_testing` processes on one fresh database."""
    url = await postgres.ensure_database(f"forge_shutdown_{secrets.token_hex(4)}")
    secret = secrets.token_hex(32)
    started: list[ServerProcess] = []

    async def start(**env: str) -> ServerProcess:
        process = ServerProcess(
            {
                "FORGE_DATABASE_URL": url,
                "FORGE_JWT_SECRET": secret,
                "FORGE_DATA_DIR": str(tmp_path_factory.mktemp("shutdown")),
                "FORGE_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
                "FORGE_LOG_FORMAT": "text",
                "FORGE_BCRYPT_ROUNDS": "4",
                **env,
            },
            with_testing_service=True,
        )
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        await process.kill()


def ticks(
    channel: grpc.aio.Channel,
) -> grpc.aio.UnaryStreamCall[testing_pb2.StreamTicksRequest, testing_pb2.StreamTicksResponse]:
    return testing_pb2_grpc.TestingServiceStub(channel).StreamTicks(
        testing_pb2.StreamTicksRequest(count=0, interval_ms=50)
    )


async def echo(port: int) -> None:
    """One Echo on a fresh connection (a load balancer's new connection)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as fresh:
        await testing_pb2_grpc.TestingServiceStub(fresh).Echo(
            testing_pb2.EchoRequest(message="new call"), timeout=5
        )


async def refused_call(port: int, deadline: float) -> grpc.aio.AioRpcError:
    """The failure of the first new call refused, trying until `deadline` (monotonic).

    A call that reached the server in the instant it stopped accepting is CANCELLED by
    grpc itself; the calls after it are refused."""
    while time.monotonic() < deadline:
        try:
            await echo(port)
        except grpc.aio.AioRpcError as refused:
            if refused.code() != grpc.StatusCode.CANCELLED:
                return refused
        await asyncio.sleep(0.05)
    raise AssertionError("new calls are still served")


async def read_all(call: grpc.aio.UnaryStreamCall[Any, T], into: list[T]) -> None:
    """Reads `call` to its end into `into` (kept when the call fails)."""
    while (message := await asyncio.wait_for(call.read(), 10)) is not grpc.aio.EOF:
        into.append(cast(T, message))


def check_shutting_down(status: status_pb2.Status) -> None:
    assert status.code == Code.UNAVAILABLE.value, status
    assert error_reason(status) == SHUTTING_DOWN, status


async def test_sigterm_drains_then_refuses_and_streams_end_in_band(spawn: Spawn) -> None:
    server = await spawn(FORGE_SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await asyncio.wait_for(watch.read(), 10)
        assert first.status == health_pb2.HealthCheckResponse.SERVING

        stream = ticks(channel)
        first_tick = await asyncio.wait_for(stream.read(), 10)
        assert isinstance(first_tick, testing_pb2.StreamTicksResponse)
        assert first_tick.tick == 1

        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)

        update = await asyncio.wait_for(watch.read(), 5)
        assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert time.monotonic() - sent < DRAIN_SECONDS

        # While draining, new calls (and new connections) are still served...
        await echo(server.port)
        assert time.monotonic() - sent < DRAIN_SECONDS
        # ...and once the drain delay is over, refused.
        refused = await refused_call(server.port, deadline=sent + DRAIN_SECONDS + 3)
        refused_at = time.monotonic() - sent
        assert refused.code() == grpc.StatusCode.UNAVAILABLE
        assert refused_at >= DRAIN_SECONDS - 0.1

        # The open stream kept flowing through the drain and the grace period, then ended
        # with the in-band error before the grace ran out, and the call with its status.
        received: list[testing_pb2.StreamTicksResponse] = []
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await read_all(stream, received)
        ended_at = time.monotonic() - sent
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(ended.value).reason == SHUTTING_DOWN
        assert [t.WhichOneof("event") for t in received[:-1]] == ["tick"] * (len(received) - 1)
        assert len(received) > (DRAIN_SECONDS / 0.05) / 2
        last = received[-1]
        assert last.WhichOneof("event") == "error"
        check_shutting_down(last.error)
        assert [t.seq for t in received] == list(range(2, len(received) + 2))
        assert refused_at < ended_at < DRAIN_SECONDS + GRACE_SECONDS

    assert await server.wait(timeout=GRACE_SECONDS + 15) == 0, server.text()


async def test_an_sse_stream_through_envoy_ends_with_the_error_event(spawn: Spawn) -> None:
    server = await spawn()
    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=server.port,
        descriptor_path=TEST_DESCRIPTOR,
        listen_host="127.0.0.1",
        extra_services=[TESTING_SERVICE],
        extra_streaming_paths=[f"/{TESTING_SERVICE}/StreamTicks"],
    )
    frames: list[dict[str, object]] = []
    async with (
        EnvoyProcess(config) as envoy,
        aiohttp.ClientSession(base_url=envoy.base_url) as http,
        http.get("/v1/testing/ticks", params={"intervalMs": "50"}) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        buffer = b""
        # An abrupt end (a reset) would raise here instead of ending the body.
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                assert frame.startswith(b"data: "), frame
                frames.append(json.loads(frame.removeprefix(b"data: ")))
                if len(frames) == 3:
                    server.send_signal(signal.SIGTERM)
    assert all("tick" in frame for frame in frames[:-1])
    error = frames[-1]["error"]
    assert isinstance(error, dict)
    assert error["code"] == Code.UNAVAILABLE.value
    assert [d["reason"] for d in error["details"] if "reason" in d] == [SHUTTING_DOWN]
    assert [frame["seq"] for frame in frames] == [str(n) for n in range(1, len(frames) + 1)]
    assert await server.wait(timeout=GRACE_SECONDS + 15) == 0, server.text()


async def test_a_chat_open_at_sigterm_ends_in_band_and_is_kept_as_cancelled(
    spawn: Spawn,
) -> None:
    server = await spawn(FORGE_ECHO_TOKEN_DELAY_MS="100")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await register(channel, display_name="Admin")
        team = await new_team(channel)
        conversation = await new_conversation(channel, team.owner, team.project_id)
        question = " ".join(f"word{n}" for n in range(200))  # about 20 s of answer
        call = chat_call(channel, team.owner, conversation.id, question)
        events = await read_events(call, 4)  # started and three deltas
        server.send_signal(signal.SIGTERM)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await read_all(call, events)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(ended.value).reason == SHUTTING_DOWN
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "started"
    assert kinds[1:-1] == ["delta"] * (len(kinds) - 2)
    check_shutting_down(events[-1].error)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    received = "".join(event.delta.text for event in events if event.HasField("delta"))
    assert await server.wait(timeout=GRACE_SECONDS + 15) == 0, server.text()

    # Another server on the same database shows the answer as cancelled, with its text.
    again = await spawn()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{again.port}") as channel:
        stored = await messages(channel, team.owner, conversation.id)
    answer = next(m for m in stored if m.id == events[0].started.assistant_message_id)
    assert answer.status == agents_pb2.MESSAGE_STATUS_CANCELLED
    assert answer.content == received


# --- the helper itself (in process) -----------------------------------------------------


async def _stored_events(closed: asyncio.Event) -> AsyncIterator[int]:
    """Two stored events (seqs 7 and 8), then waits for more."""
    try:
        yield 7
        yield 8
        await asyncio.Event().wait()
    finally:
        closed.set()


@pytest.mark.parametrize("when", ["waiting", "sending"])
async def test_server_stream_ends_with_shutdown_keeping_stored_seqs(when: str) -> None:
    """WatchRun's shape: events keep their own seqs, the error carries the last one sent.
    The signal comes while the source waits (the call's task is interrupted there) or while
    an event is being sent (the stream ends before the next one is asked for)."""
    shutdown = ShutdownSignal()
    closed = asyncio.Event()
    sent = 0
    received: list[tuple[str, int]] = []

    def message(seq: int, _numbered: int) -> tuple[str, int]:
        nonlocal sent
        sent = seq
        return ("event", seq)

    def failure(error: ForgeError, _numbered: int) -> tuple[str, int]:
        assert error.reason == SHUTTING_DOWN
        return ("error", sent)

    async def serve() -> None:
        source = cast(AsyncGenerator[int, None], _stored_events(closed))
        async with server_stream(source, message, failure) as messages:
            async for item in messages:
                received.append(item)
                if item == ("event", 8):
                    if when == "sending":
                        shutdown.trigger()
                    else:
                        asyncio.get_running_loop().call_later(0.05, shutdown.trigger)

    with serving_under(shutdown), pytest.raises(ForgeError) as ended:
        await asyncio.wait_for(serve(), 5)
    assert ended.value.reason == SHUTTING_DOWN
    assert ended.value.code is Code.UNAVAILABLE
    assert received == [("event", 7), ("event", 8), ("error", 8)]
    assert closed.is_set()
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_stream_opened_after_the_signal_ends_at_once() -> None:
    shutdown = ShutdownSignal()
    shutdown.trigger()
    closed = asyncio.Event()
    received: list[str] = []

    async def serve() -> None:
        source = cast(AsyncGenerator[int, None], _stored_events(closed))
        async with server_stream(source, lambda e, n: f"event {n}", lambda e, n: f"error {n}") as m:
            async for item in m:
                received.append(item)

    with serving_under(shutdown), pytest.raises(ForgeError):
        await serve()
    assert received == ["error 1"]
