"""TestingService.Echo on a grpc.aio server, bare or through Forge's CallInterceptor: what the
interceptor costs per call, apart from authentication and the database.

    python -m bench.peers.unary_echo '{"interceptor": true, "uvloop": true}'
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
from forge.testing.v1 import testing_pb2, testing_pb2_grpc

from bench.loadgen.common import args
from server.core.call_policy import CallPolicy
from server.core.interceptor import CallInterceptor
from tests.support.testing_service import TestingService

ECHO = "/forge.testing.v1.TestingService/Echo"


class BareEcho(TestingService):
    """The same servicer either way: it answers without touching the call context."""

    async def Echo(
        self, request: testing_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> testing_pb2.EchoResponse:
        return testing_pb2.EchoResponse(message=request.message)


async def serve(with_interceptor: bool) -> None:
    interceptors = [CallInterceptor(CallPolicy(public=[ECHO]))] if with_interceptor else []
    server = grpc.aio.server(interceptors=interceptors)
    testing_pb2_grpc.add_TestingServiceServicer_to_server(BareEcho(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"echo: serving on port {port}", file=sys.stderr, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    params = args()
    if params.get("uvloop"):
        import uvloop

        uvloop.install()
    asyncio.run(serve(bool(params.get("interceptor"))))
