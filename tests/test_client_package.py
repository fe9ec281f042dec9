"""The generated betterproto2 client package talks to the real server."""

from __future__ import annotations

import asyncio

import grpc
from forge_client.forge.testing import v1 as testing
from grpclib.client import Channel

from server.app import ForgeServer


async def test_async_grpclib_client_unary_and_stream(forge: ForgeServer) -> None:
    channel = Channel("127.0.0.1", forge.port)
    try:
        stub = testing.TestingServiceStub(channel)
        response = await stub.echo(testing.EchoRequest(message="from betterproto2"), timeout=5)
        assert response.message == "from betterproto2"
        assert response.request_id
        ticks = [t async for t in stub.stream_ticks(testing.StreamTicksRequest(count=2), timeout=5)]
        assert [t.seq for t in ticks] == [1, 2, 3]
        assert ticks[-1].completed is True
    finally:
        channel.close()


async def test_sync_grpcio_client_unary(forge: ForgeServer) -> None:
    def call() -> str:
        with grpc.insecure_channel(f"127.0.0.1:{forge.port}") as channel:
            stub = testing.TestingServiceSyncStub(channel)
            return stub.echo(testing.EchoRequest(message="sync")).message

    assert await asyncio.to_thread(call) == "sync"
