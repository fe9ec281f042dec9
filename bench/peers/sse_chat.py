"""Peer of the chat benchmark: a minimal FastAPI + StreamingResponse SSE endpoint streaming
the echo model's answer from the same paced generator Forge uses (EchoProvider.stream), with
no database, no auth and no history.

    FORGE_ECHO_TOKEN_DELAY_MS=20 uvicorn bench.peers.sse_chat:app --port 0

POST /chat {"content": "..."} answers `text/event-stream`, one `data: {json}\\n\\n` per event,
shaped like Forge's ChatEvents through Envoy: started, one delta per token, usage, completed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from server.config import Settings
from server.llm import ChatMessage, ChatRequest, Finish, TextDelta
from server.llm.echo import EchoProvider

app = FastAPI()
provider = EchoProvider(Settings())  # FORGE_ECHO_TOKEN_DELAY_MS sets the pace
_dumps = json.dumps


class ChatBody(BaseModel):
    content: str


def _event(body: dict[str, object]) -> bytes:
    return b"data: " + _dumps(body, separators=(",", ":")).encode() + b"\n\n"


async def _events(content: str) -> AsyncIterator[bytes]:
    request = ChatRequest(model="echo", messages=[ChatMessage.user(content)])
    seq = 1
    yield _event(
        {
            "seq": str(seq),
            "started": {
                "userMessageId": str(uuid.uuid4()),
                "assistantMessageId": str(uuid.uuid4()),
                "model": "echo",
            },
        }
    )
    async for event in provider.stream(request):
        seq += 1
        if type(event) is TextDelta:
            yield b'data: {"seq":"%d","delta":{"text":%s}}\n\n' % (seq, _dumps(event.text).encode())
        elif type(event) is Finish:
            usage = event.usage
            yield _event(
                {
                    "seq": str(seq),
                    "usage": {
                        "inputTokens": str(usage.input_tokens),
                        "outputTokens": str(usage.output_tokens),
                    },
                }
            )
            seq += 1
            yield _event({"seq": str(seq), "completed": {"finishReason": "FINISH_REASON_STOP"}})


@app.post("/chat")
async def chat(body: ChatBody) -> StreamingResponse:
    return StreamingResponse(_events(body.content), media_type="text/event-stream")
