"""Image models: the offline placeholder PNG, and Gemini image models through the real
google-genai SDK against a fake `generateContent` endpoint on loopback."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from server.config import Settings
from server.core.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from server.llm.images import ImageGenerator, nearest_aspect_ratio, size_class
from server.llm.placeholder import placeholder_png, placeholder_size
from tests.artifacts.service_support import png_size

API_KEY = "test-gemini-key"
FAKE_IMAGE = placeholder_png("fake gemini", "", 32, 32)


@dataclass
class ImageFake:
    """`POST /v1beta/models/{model}:generateContent`, answering with an inline image."""

    mode: str = "image"
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(
            {
                "target": request.match_info["target"],
                "key": request.headers.get("x-goog-api-key"),
                "body": body,
            }
        )
        if self.mode == "rate-limited":
            error = {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}
            return web.json_response({"error": error}, status=429)
        parts: list[dict[str, Any]] = [{"text": "Here is your picture."}]
        if self.mode == "image":
            data = base64.b64encode(FAKE_IMAGE).decode()
            parts.append({"inlineData": {"mimeType": "image/png", "data": data}})
        return web.json_response(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
                ],
                "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 1290},
            }
        )


@pytest.fixture
async def fake() -> AsyncIterator[ImageFake]:
    fake = ImageFake()
    app = web.Application()
    app.router.add_post("/v1beta/models/{target}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.base_url = f"http://{host}:{port}"
    yield fake
    await runner.cleanup()


def test_placeholders_are_deterministic_pngs_of_the_asked_shape() -> None:
    first = placeholder_png("a red fox", "pixel art", 320, 200)
    assert placeholder_png("a red fox", "pixel art", 320, 200) == first
    assert placeholder_png("a red fox", "watercolor", 320, 200) != first
    assert png_size(first) == (320, 200)
    assert placeholder_size(4096, 2048) == (1024, 512)  # bounded, same aspect ratio
    assert placeholder_size(300, 200) == (300, 200)


def test_sizes_map_to_what_gemini_accepts() -> None:
    assert nearest_aspect_ratio(1024, 1024) == "1:1"
    assert nearest_aspect_ratio(1920, 1080) == "16:9"
    assert nearest_aspect_ratio(1000, 1400) == "3:4"
    assert nearest_aspect_ratio(2560, 1080) == "21:9"
    assert [size_class(*s) for s in ((512, 512), (2048, 1000), (4096, 10))] == ["1K", "2K", "4K"]


async def test_gemini_image_models_go_through_the_sdk(fake: ImageFake) -> None:
    generator = ImageGenerator(Settings(gemini_api_key=API_KEY, gemini_base_url=fake.base_url))
    try:
        assert generator.default_model == "gemini/gemini-2.5-flash-image"
        model = generator.resolve("gemini/gemini-3-pro-image-preview")
        image = await generator.generate(model, "A lighthouse", "ink", 1920, 1080)
        assert (image.data, image.content_type) == (FAKE_IMAGE, "image/png")
        sent = fake.requests[-1]
        assert sent["target"] == "gemini-3-pro-image-preview:generateContent"
        assert sent["key"] == API_KEY
        config = sent["body"]["generationConfig"]
        assert config["responseModalities"] == ["IMAGE"]
        assert config["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "2K"}
        assert sent["body"]["contents"][0]["parts"][0]["text"] == "A lighthouse\n\nStyle: ink"

        fake.mode = "text-only"
        with pytest.raises(FailedPrecondition) as declined:
            await generator.generate(model, "Something odd", "", 512, 512)
        assert declined.value.reason == "IMAGE_NOT_GENERATED"

        fake.mode = "rate-limited"
        with pytest.raises(ResourceExhausted):
            await generator.generate(model, "Again", "", 512, 512)

        for not_an_image_model in ("gemini/gemini-2.5-pro", "gemini/imagen-4.0-generate-001"):
            with pytest.raises(InvalidArgument):
                generator.resolve(not_an_image_model)
    finally:
        await generator.aclose()


def test_offline_default_and_keyless_models() -> None:
    generator = ImageGenerator(Settings())
    assert generator.default_model == "echo"
    assert generator.resolve("") == "echo"
    with pytest.raises(FailedPrecondition):
        generator.resolve("gemini/gemini-2.5-flash-image")
    with pytest.raises(ValueError, match="image_model"):
        ImageGenerator(Settings(image_model="anthropic/claude"))
