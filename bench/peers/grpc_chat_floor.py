"""The floor of the chat benchmark: a bare grpc.aio server whose AgentService.Chat streams the
echo model's answer from the same paced generator Forge uses, as the same ChatEvents
(started, one delta per token, usage, completed), with no interceptor, no auth, no database
and no history: what any grpc.aio streaming server costs per token on this machine.

    FORGE_ECHO_TOKEN_DELAY_MS=20 python -m bench.peers.grpc_chat_floor '{"uvloop": true}'
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from forge.agents.v1 import agents_pb2

from bench.loadgen.common import args
from server.config import Settings
from server.llm import ChatMessage, ChatRequest, Finish, TextDelta
from server.llm.echo import EchoProvider

Context = grpc.aio.ServicerContext[Any, Any]


_provider = EchoProvider(Settings())  # FORGE_ECHO_TOKEN_DELAY_MS sets the pace


async def chat(
    request: agents_pb2.ChatRequest, context: Context
) -> AsyncIterator[agents_pb2.ChatEvent]:
    """AgentService.Chat alone (the only method the load generator calls)."""
    seq = 1
    yield agents_pb2.ChatEvent(
        seq=seq,
        started=agents_pb2.ChatStarted(
            user_message_id=str(uuid.uuid4()),
            assistant_message_id=str(uuid.uuid4()),
            model="echo",
        ),
    )
    answer = ChatRequest(model="echo", messages=[ChatMessage.user(request.content)])
    async for event in _provider.stream(answer):
        seq += 1
        if type(event) is TextDelta:
            yield agents_pb2.ChatEvent(seq=seq, delta=agents_pb2.TextDelta(text=event.text))
        elif type(event) is Finish:
            usage = agents_pb2.TokenUsage(
                input_tokens=event.usage.input_tokens, output_tokens=event.usage.output_tokens
            )
            yield agents_pb2.ChatEvent(seq=seq, usage=usage)
            seq += 1
            yield agents_pb2.ChatEvent(
                seq=seq,
                completed=agents_pb2.ChatCompleted(finish_reason=agents_pb2.FINISH_REASON_STOP),
            )


async def serve() -> None:
    server = grpc.aio.server()
    handler = grpc.unary_stream_rpc_method_handler(
        chat,
        request_deserializer=agents_pb2.ChatRequest.FromString,
        response_serializer=agents_pb2.ChatEvent.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("forge.agents.v1.AgentService", {"Chat": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"chat floor: serving on port {port}", file=sys.stderr, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    if args().get("uvloop"):
        import uvloop

        uvloop.install()
    asyncio.run(serve())
