"""A fake Anthropic Messages API: `POST /v1/messages` with `"stream": true`, answered with the
real SSE event sequence (shapes as in anthropic.types.Raw*Event):

    message_start (usage.input_tokens) · content_block_start (text) · ping ·
    content_block_delta (text_delta)… · content_block_stop ·
    [content_block_start (tool_use) · content_block_delta (input_json_delta)… ·
     content_block_stop]… · message_delta (stop_reason, usage.output_tokens) · message_stop

or an `error` event in the middle; errors before streaming are JSON bodies
`{"type": "error", "error": {"type": …, "message": …}}` with their HTTP status.

    async with AnthropicFake(Script(tokens=words(25))) as base_url: ...
"""

from __future__ import annotations

import json

from aiohttp import web

from tests.fakes.server import FakeProviderServer

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _event(name: str, data: dict[str, object]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _error(status: int, message: str) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
    }


class AnthropicFake(FakeProviderServer):
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        # The SDK sends its key as `Authorization: Bearer …`; the API also takes `x-api-key`.
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        body, refusal = await self.record(request, request.headers.get("x-api-key", bearer))
        if refusal is not None:
            return refusal
        if body.get("stream") is not True:
            return self.error_response(400)
        return await self.serve_stream(request, body, str(body.get("model", "")))

    def error_response(self, status: int, *, quoted_key: str | None = None) -> web.Response:
        message = f"invalid x-api-key: {quoted_key}" if quoted_key is not None else "fake error"
        headers = {"request-id": "req_fake"}
        if self.script.retry_after is not None:
            headers["retry-after"] = self.script.retry_after
        return web.json_response(_error(status, message), status=status, headers=headers)

    async def write_stream(
        self, response: web.StreamResponse, body: dict[str, object], model: str
    ) -> None:
        script = self.script
        await response.write(
            _event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_fake_{len(self.requests)}",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": script.input_tokens, "output_tokens": 1},
                    },
                },
            )
        )
        await response.write(
            _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        await response.write(_event("ping", {"type": "ping"}))
        for index, token in enumerate(script.tokens):
            if script.error_after == index:
                await response.write(_event("error", _error(script.error_status, "fake failure")))
                return
            await self.before_token(index)
            await response.write(
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": token},
                    },
                )
            )
            self.token_written()
        if script.hold_after == len(script.tokens):
            await self.hold()
        await response.write(
            _event("content_block_stop", {"type": "content_block_stop", "index": 0})
        )
        for number, call in enumerate(script.tool_calls, start=1):
            arguments = json.dumps(call.arguments)
            half = len(arguments) // 2
            await response.write(
                _event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": number,
                        "content_block": {
                            "type": "tool_use",
                            "id": call.id or f"toolu_fake_{number}",
                            "name": call.name,
                            "input": {},
                        },
                    },
                )
            )
            for part in (arguments[:half], arguments[half:]):
                await response.write(
                    _event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": number,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        },
                    )
                )
            await response.write(
                _event("content_block_stop", {"type": "content_block_stop", "index": number})
            )
        stop_reason = script.stop_reason or ("tool_use" if script.tool_calls else "end_turn")
        await response.write(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": script.reported_output_tokens},
                },
            )
        )
        await response.write(_event("message_stop", {"type": "message_stop"}))
