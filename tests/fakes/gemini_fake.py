"""A fake Gemini API: `POST /{version}/models/{model}:streamGenerateContent?alt=sse`, answered
the way the real service streams (`data: <GenerateContentResponse JSON>` + CRLF CRLF):

    {"candidates": [{"content": {"role": "model", "parts": [{"text": …}]}, "index": 0}],
     "usageMetadata": {"promptTokenCount", "candidatesTokenCount", "totalTokenCount"}, …}

the last chunk carrying `functionCall` parts (if scripted) and `finishReason`; an in-stream
error is a `data: {"error": {"code", "message", "status"}}` chunk. Errors before streaming
are `{"error": {"code", "message", "status", "details"}}` bodies (a RetryInfo detail when
the script has a retry-after). A wrong API key is refused like the real service does: HTTP
400 INVALID_ARGUMENT with an ErrorInfo reason API_KEY_INVALID.

Image models answer `POST /{version}/models/{model}:generateContent` (responseModalities
["IMAGE"]) with IMAGE_PNG as an inline data part.

The API version in the path is recorded, not enforced (`versions_seen`).

    async with GeminiFake(Script(tokens=words(25))) as base_url: ...
"""

from __future__ import annotations

import base64
import json

from aiohttp import web

from server.llm.placeholder import placeholder_png
from tests.fakes.server import FakeProviderServer

IMAGE_PNG = placeholder_png("fake", "", 8, 8)
"""What the fake's image models draw (an 8 by 8 PNG)."""

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _data(payload: dict[str, object]) -> bytes:
    return f"data: {json.dumps(payload)}\r\n\r\n".encode()


def _error(status: int, message: str, details: list[dict[str, object]]) -> dict[str, object]:
    error: dict[str, object] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


class GeminiFake(FakeProviderServer):
    versions_seen: list[str]

    def add_routes(self, app: web.Application) -> None:
        self.versions_seen = []
        app.router.add_post("/{version}/models/{target}", self._models)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.versions_seen.append(request.match_info["version"])
        model, _, method = request.match_info["target"].partition(":")
        key = request.headers.get("x-goog-api-key", request.query.get("key", ""))
        body, refusal = await self.record(request, key)
        if refusal is not None:
            return refusal
        if method == "generateContent":
            return self._image(body)
        if method != "streamGenerateContent" or request.query.get("alt") != "sse":
            return self.error_response(404)
        return await self.serve_stream(request, body, model)

    def _image(self, body: dict[str, object]) -> web.Response:
        """An image model's answer: the image as an inline data part (IMAGE_PNG)."""
        config = body.get("generationConfig")
        modalities = config.get("responseModalities") if isinstance(config, dict) else None
        if modalities != ["IMAGE"]:
            return self.error_response(400)
        part = {
            "inlineData": {"mimeType": "image/png", "data": base64.b64encode(IMAGE_PNG).decode()}
        }
        return web.json_response(
            {"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}]}
        )

    def error_response(self, status: int, *, quoted_key: str | None = None) -> web.Response:
        details: list[dict[str, object]] = []
        message = "fake error"
        if quoted_key is not None:
            status, message = 400, f"API key not valid: {quoted_key}"
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            )
        headers = {}
        if self.script.retry_after is not None and status != 400:
            headers["Retry-After"] = self.script.retry_after
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{self.script.retry_after}s",
                }
            )
        return web.json_response(_error(status, message, details), status=status, headers=headers)

    def _chunk(
        self, model: str, parts: list[dict[str, object]], sent: int, finish: str | None = None
    ) -> bytes:
        prompt = self.script.input_tokens
        candidate: dict[str, object] = {
            "content": {"role": "model", "parts": parts},
            "index": 0,
        }
        if finish is not None:
            candidate["finishReason"] = finish
        return _data(
            {
                "candidates": [candidate],
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": sent,
                    "totalTokenCount": prompt + sent,
                },
                "modelVersion": model,
                "responseId": f"fake-{len(self.requests)}",
            }
        )

    async def write_stream(
        self, response: web.StreamResponse, body: dict[str, object], model: str
    ) -> None:
        script = self.script
        for index, token in enumerate(script.tokens):
            if script.error_after == index:
                status = script.error_status
                await response.write(_data(_error(status, "fake failure", [])))
                return
            await self.before_token(index)
            await response.write(self._chunk(model, [{"text": token}], index + 1))
            self.token_written()
        if script.hold_after == len(script.tokens):
            await self.hold()
        parts: list[dict[str, object]] = []
        for call in script.tool_calls:
            function_call: dict[str, object] = {"name": call.name, "args": dict(call.arguments)}
            if call.id is not None:
                function_call["id"] = call.id
            parts.append({"functionCall": function_call})
        if not parts:
            parts.append({"text": ""})
        finish = script.stop_reason or "STOP"
        await response.write(self._chunk(model, parts, script.reported_output_tokens, finish))
