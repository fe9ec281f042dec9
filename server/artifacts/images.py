"""Image models for GenerateImage: `echo` (offline placeholder PNG) and `gemini/<model>`.

Gemini image models ("gemini-2.5-flash-image", "gemini-3-pro-image-preview", …) answer
`generateContent` with the image as an inline data part; they are called through
`google-genai` with `response_modalities=["IMAGE"]` and an `image_config` (aspect ratio and
size class). The Imagen `:predict` models are not offered: the installed SDK supports
`generate_images` only in Vertex AI mode, and the Gemini API retired them.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from server.agents.providers.echo import ECHO
from server.agents.providers.gemini import API_VERSION, map_error
from server.artifacts.placeholder import placeholder_png, placeholder_size
from server.config import Settings
from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument

DEFAULT_GEMINI_IMAGE_MODEL = "gemini-2.5-flash-image"
UNKNOWN_IMAGE_MODEL = "UNKNOWN_IMAGE_MODEL"
PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
IMAGE_NOT_GENERATED = "IMAGE_NOT_GENERATED"

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9")


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    """What was asked of the model (a provider may round it)."""


def nearest_aspect_ratio(width: int, height: int) -> str:
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(ASPECT_RATIOS, key=distance)


def size_class(width: int, height: int) -> str:
    longest = max(width, height)
    return "1K" if longest <= 1024 else "2K" if longest <= 2048 else "4K"


def _full_prompt(prompt: str, style: str) -> str:
    return f"{prompt}\n\nStyle: {style}" if style else prompt


class ImageGenerator:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._http: httpx2.AsyncClient | None = None
        self._client: genai.Client | None = None
        has_gemini = settings.gemini_api_key is not None
        fallback = f"gemini/{DEFAULT_GEMINI_IMAGE_MODEL}" if has_gemini else ECHO
        configured = settings.image_model or fallback
        try:
            self.default_model = self.resolve(configured, field="image_model")
        except (InvalidArgument, FailedPrecondition) as error:
            raise ValueError(f"image_model {configured!r}: {error.message}") from None

    def resolve(self, model: str, *, field: str = "model") -> str:
        """The canonical id of an image model; INVALID_ARGUMENT UNKNOWN_IMAGE_MODEL for one
        this server cannot draw with, FAILED_PRECONDITION without the provider's key."""
        if not model:
            return self.default_model
        if model == ECHO:
            return ECHO
        provider, _, name = model.partition("/")
        if provider != "gemini" or "image" not in name or name.startswith("imagen"):
            raise InvalidArgument.of(
                [
                    FieldViolation(
                        field,
                        f"{model[:80]!r} is not an image model: use echo or a Gemini image "
                        f"model such as gemini/{DEFAULT_GEMINI_IMAGE_MODEL}",
                    )
                ],
                reason=UNKNOWN_IMAGE_MODEL,
            )
        if self._settings.gemini_api_key is None:
            raise FailedPrecondition(
                f"model {model!r} needs a gemini API key, which this server does not have",
                PROVIDER_NOT_CONFIGURED,
                {"provider": "gemini"},
            )
        return model

    async def generate(
        self, model: str, prompt: str, style: str, width: int, height: int
    ) -> GeneratedImage:
        """One image from a resolved model id."""
        if model == ECHO:
            w, h = placeholder_size(width, height)
            data = await asyncio.to_thread(placeholder_png, prompt, style, w, h)
            return GeneratedImage(data, "image/png", w, h)
        return await self._gemini(model.partition("/")[2], prompt, style, width, height)

    async def _gemini(
        self, name: str, prompt: str, style: str, width: int, height: int
    ) -> GeneratedImage:
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            candidate_count=1,
            image_config=types.ImageConfig(
                aspect_ratio=nearest_aspect_ratio(width, height),
                image_size=size_class(width, height),
            ),
        )
        try:
            response = await self._gemini_client().aio.models.generate_content(
                model=name, contents=_full_prompt(prompt, style), config=config
            )
        except (genai_errors.APIError, httpx2.HTTPError, ValueError) as error:
            raise map_error(error).error from None
        for candidate in response.candidates or ():
            parts = candidate.content.parts if candidate.content is not None else None
            for part in parts or ():
                blob = part.inline_data
                if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
                    return GeneratedImage(blob.data, blob.mime_type or "image/png", width, height)
        raise FailedPrecondition(
            "the model returned no image (it may have declined the prompt)",
            IMAGE_NOT_GENERATED,
            {"model": f"gemini/{name}"},
        )

    def _gemini_client(self) -> genai.Client:
        if self._client is None:
            settings = self._settings
            assert settings.gemini_api_key is not None
            timeout = settings.provider_timeout_seconds
            self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(timeout))
            self._client = genai.Client(
                api_key=settings.gemini_api_key.get_secret_value(),
                vertexai=False,
                http_options=types.HttpOptions(
                    base_url=settings.gemini_base_url,
                    api_version=API_VERSION,
                    timeout=max(int(timeout * 1000), 1),
                    httpx_async_client=self._http,
                    retry_options=types.HttpRetryOptions(attempts=1),
                ),
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        http, self._http = self._http, None
        if client is not None:
            await client.aio.aclose()
            client.close()
        if http is not None:
            await http.aclose()
