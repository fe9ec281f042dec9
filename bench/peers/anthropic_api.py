"""The Anthropic Messages API on loopback, for the chat benchmark's SDK path: the fake the tests
use (tests/fakes/anthropic_fake.py: the real SSE event sequence), streaming a long answer at
a fixed pace, so that Forge's Anthropic provider runs the real `anthropic` SDK (its HTTP
transport, SSE decoder and an event model per delta) on every token it relays.

    python -m bench.peers.anthropic_api '{"token_delay_ms": 20, "tokens": 3000}'

Prints "anthropic api: serving on http://127.0.0.1:PORT" once it listens; runs until killed.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys

from aiohttp import web

from bench.loadgen.common import args
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.script import Script, words

API_KEY = "bench-anthropic-key"
MODEL = "anthropic/claude-bench"


_stream_start: contextvars.ContextVar[float] = contextvars.ContextVar("stream_start")


class _PacedFake(AnthropicFake):
    """Each answer's tokens on a fixed schedule from its first (as the echo model paces its
    own), not a sleep after each write, so the pace does not drift on a busy core."""

    async def serve_stream(
        self, request: web.Request, body: dict[str, object], model: str
    ) -> web.StreamResponse:
        _stream_start.set(asyncio.get_running_loop().time())
        return await super().serve_stream(request, body, model)

    async def before_token(self, index: int) -> None:
        due = _stream_start.get() + index * self.script.token_delay
        await asyncio.sleep(max(due - asyncio.get_running_loop().time(), 0))


async def serve(token_delay_ms: float, tokens: int) -> None:
    fake = _PacedFake(Script(tokens=words(tokens), token_delay=token_delay_ms / 1000))
    async with fake as base_url:
        print(f"anthropic api: serving on {base_url}", file=sys.stderr, flush=True)
        while True:
            await asyncio.sleep(5)
            fake.requests.clear()  # a benchmark sends thousands; nothing reads them


if __name__ == "__main__":
    params = args()
    asyncio.run(serve(float(params.get("token_delay_ms", 20)), int(params.get("tokens", 3000))))
