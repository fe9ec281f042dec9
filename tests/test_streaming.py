"""Server streams relay each event as it is produced, over gRPC and through Envoy as SSE."""

from __future__ import annotations

import itertools
import json
import time

import aiohttp
import grpc
import pytest
from forge.testing.v1 import testing_pb2, testing_pb2_grpc

INTERVAL_MS = 300
COUNT = 4


async def test_stream_over_grpc_ends_with_completed(channel: grpc.aio.Channel) -> None:
    stub = testing_pb2_grpc.TestingServiceStub(channel)
    events = [e async for e in stub.StreamTicks(testing_pb2.StreamTicksRequest(count=3), timeout=5)]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.WhichOneof("event") for e in events] == ["tick", "tick", "tick", "completed"]


async def test_stream_through_envoy_is_sse_event_by_event(http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    arrivals: list[float] = []
    events: list[dict[str, object]] = []
    params = {"count": str(COUNT), "intervalMs": str(INTERVAL_MS)}
    async with http.get("/v1/testing/ticks", params=params) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                assert frame.startswith(b"data: "), frame
                events.append(json.loads(frame[len(b"data: ") :]))
                arrivals.append(time.monotonic() - started)

    assert [e["seq"] for e in events] == [str(n) for n in range(1, COUNT + 2)]
    assert events[-1].get("completed") is True
    # Relayed, not buffered: the first tick arrived well before the server sent the last
    # one (which it does (COUNT - 1) * INTERVAL_MS after the first).
    assert arrivals[-1] - arrivals[0] >= (COUNT - 1) * INTERVAL_MS / 1000 * 0.8
    gaps = [b - a for a, b in itertools.pairwise(arrivals[:COUNT])]
    assert all(gap >= INTERVAL_MS / 1000 * 0.5 for gap in gaps), gaps


async def test_invalid_stream_request_fails_before_any_event(
    channel: grpc.aio.Channel, http: aiohttp.ClientSession
) -> None:
    stub = testing_pb2_grpc.TestingServiceStub(channel)
    call = stub.StreamTicks(testing_pb2.StreamTicksRequest(count=-1), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call.read()
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with http.get("/v1/testing/ticks", params={"count": "-1"}) as response:
        assert response.status == 400
        body = await response.json()
    assert body["code"] == 3
