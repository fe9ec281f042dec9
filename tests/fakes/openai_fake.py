"""A fake OpenAI-compatible Chat Completions API: `POST /v1/chat/completions` with
`"stream": true`, answered with the real SSE wire format (shapes as in
openai.types.chat.ChatCompletionChunk):

    data: {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], …}
    data: {"choices": [{"index": 0, "delta": {"content": "tok0 "}}], …}            (per token)
    data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": …,
           "type": "function", "function": {"name": …, "arguments": ""}}]}}]}    (per call,
    data: {… "tool_calls": [{"index": 0, "function": {"arguments": "<part>"}}] …}  then parts)
    data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], …}
    data: {"choices": [], "usage": {"prompt_tokens": …, "completion_tokens": …}}  (include_usage)
    data: [DONE]

or `data: {"error": {…}}` in the middle; errors before streaming are JSON bodies
`{"error": {"message": …, "type": …, "code": …}}` with their HTTP status. The key is read
from `Authorization: Bearer …` (recorded with the request's headers).

`GET /v1/models` lists `models` (`script_models`), as OpenAI and Ollama do.

    async with OpenAIFake(Script(tokens=words(25))) as base_url: ...   # base_url + "/v1"
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from tests.fakes.server import FakeProviderServer

ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def _data(payload: object) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _error(status: int, message: str) -> dict[str, object]:
    kind, code = ERROR_TYPES.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class OpenAIFake(FakeProviderServer):
    models: list[str] | None = None
    """What `GET /v1/models` lists (None: the route answers 404, as on a server without it)."""
    models_status: int | None = None
    """An error status `GET /v1/models` answers instead (e.g. 500)."""
    models_keys: list[str]
    """The bearer key of each `GET /v1/models` call, in order."""

    def script_models(self, models: list[str] | None, status: int | None = None) -> None:
        """What `GET /v1/models` answers from now on; forgets earlier calls."""
        self.models = models
        self.models_status = status
        self.models_keys = []

    def add_routes(self, app: web.Application) -> None:
        self.models_keys = []
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.Response:
        self.models_keys.append(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if self.models_status is not None:
            return web.json_response(
                _error(self.models_status, "fake error"), status=self.models_status
            )
        if self.models is None:
            return web.json_response(_error(404, "not found"), status=404)
        data = [
            {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}
            for name in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        body, refusal = await self.record(request, bearer)
        if refusal is not None:
            return refusal
        if body.get("stream") is not True:
            return self.error_response(400)
        return await self.serve_stream(request, body, str(body.get("model", "")))

    def error_response(self, status: int, *, quoted_key: str | None = None) -> web.Response:
        message = (
            f"Incorrect API key provided: {quoted_key}." if quoted_key is not None else "fake error"
        )
        headers = {"x-request-id": "req_fake"}
        if self.script.retry_after is not None:
            headers["retry-after"] = self.script.retry_after
        return web.json_response(_error(status, message), status=status, headers=headers)

    async def write_stream(
        self, response: web.StreamResponse, body: dict[str, object], model: str
    ) -> None:
        script = self.script
        envelope = {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def chunk(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _data({**envelope, "choices": [choice]})

        await response.write(chunk({"role": "assistant", "content": ""}))
        for index, token in enumerate(script.tokens):
            if script.error_after == index:
                await response.write(_data(_error(script.error_status, "fake failure")))
                return
            await self.before_token(index)
            await response.write(chunk({"content": token}))
            self.token_written()
        if script.hold_after == len(script.tokens):
            await self.hold()
        for number, call in enumerate(script.tool_calls):
            arguments = json.dumps(call.arguments)
            half = len(arguments) // 2
            opening = {
                "index": number,
                "id": call.id or f"call_fake_{number}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            await response.write(chunk({"tool_calls": [opening]}))
            for part in (arguments[:half], arguments[half:]):
                await response.write(
                    chunk({"tool_calls": [{"index": number, "function": {"arguments": part}}]})
                )
        finish = script.stop_reason or ("tool_calls" if script.tool_calls else "stop")
        await response.write(chunk({}, finish))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            prompt, completion = script.input_tokens, script.reported_output_tokens
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            await response.write(_data({**envelope, "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
