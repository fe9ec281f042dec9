"""`gemini/<model>` image models: `generateContent` with `response_modalities=["IMAGE"]` and
an `image_config` (aspect ratio and size class); the image comes back as an inline data
part."""

from __future__ import annotations

from google.genai import types
from pydantic import SecretStr

from server.config import Settings
from server.core.errors import FailedPrecondition
from server.llm.gemini_client import CALL_ERRORS, GeminiClient, map_error
from server.llm.images import GeneratedImage, nearest_aspect_ratio, size_class

IMAGE_NOT_GENERATED = "IMAGE_NOT_GENERATED"


def _full_prompt(prompt: str, style: str) -> str:
    return f"{prompt}\n\nStyle: {style}" if style else prompt


class GeminiImages:
    def __init__(self, settings: Settings, api_key: SecretStr | None = None) -> None:
        """`api_key`: a caller's own key instead of Settings.gemini_api_key."""
        self._client = GeminiClient(settings, api_key=api_key)

    async def generate(
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
            response = await self._client.models.generate_content(
                model=name, contents=_full_prompt(prompt, style), config=config
            )
        except CALL_ERRORS as error:
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

    async def aclose(self) -> None:
        await self._client.aclose()
