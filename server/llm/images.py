"""Image models for GenerateImage: `echo` (offline placeholder PNG, placeholder.py) and
`gemini/<model>` (gemini_images.py).

Gemini image models ("gemini-2.5-flash-image", "gemini-3-pro-image-preview", …) answer
`generateContent` with the image as an inline data part. The Imagen `:predict` models are
not offered: the installed SDK supports `generate_images` only in Vertex AI mode, and the
Gemini API retired them.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import SecretStr

from server.config import Settings
from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument
from server.llm.echo import ECHO
from server.llm.own_keys import NO_OWN_KEYS, OwnKeys
from server.llm.placeholder import placeholder_png, placeholder_size

if TYPE_CHECKING:
    from server.llm.gemini_images import GeminiImages

DEFAULT_GEMINI_IMAGE_MODEL = "gemini-2.5-flash-image"
UNKNOWN_IMAGE_MODEL = "UNKNOWN_IMAGE_MODEL"
PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"

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


class ImageGenerator:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._gemini: GeminiImages | None = None
        has_gemini = settings.gemini_api_key is not None
        fallback = f"gemini/{DEFAULT_GEMINI_IMAGE_MODEL}" if has_gemini else ECHO
        configured = settings.image_model or fallback
        try:
            self.default_model = self.resolve(configured, field="image_model")
        except (InvalidArgument, FailedPrecondition) as error:
            raise ValueError(f"image_model {configured!r}: {error.message}") from None

    def resolve(self, model: str, *, field: str = "model", own_keys: OwnKeys = NO_OWN_KEYS) -> str:
        """The canonical id of an image model; INVALID_ARGUMENT UNKNOWN_IMAGE_MODEL for one
        this server cannot draw with, FAILED_PRECONDITION without a key for its provider
        (the server's, or the caller's own in `own_keys`)."""
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
        if self._settings.gemini_api_key is None and own_keys.get("gemini") is None:
            raise FailedPrecondition(
                f"model {model!r} needs a gemini API key, which this server does not have",
                PROVIDER_NOT_CONFIGURED,
                {"provider": "gemini"},
            )
        return model

    async def generate(
        self,
        model: str,
        prompt: str,
        style: str,
        width: int,
        height: int,
        api_key: SecretStr | None = None,
    ) -> GeneratedImage:
        """One image from a resolved model id; with `api_key` (a caller's own key), drawn
        with that key rather than the server's."""
        if model == ECHO:
            w, h = placeholder_size(width, height)
            data = await asyncio.to_thread(placeholder_png, prompt, style, w, h)
            return GeneratedImage(data, "image/png", w, h)
        name = model.partition("/")[2]
        if api_key is None:
            return await self._gemini_images().generate(name, prompt, style, width, height)
        from server.llm.gemini_images import GeminiImages

        # A client of its own for this one image: images are few and slow, and the key's
        # client is not worth keeping.
        own = GeminiImages(self._settings, api_key=api_key)
        try:
            return await own.generate(name, prompt, style, width, height)
        finally:
            await own.aclose()

    def _gemini_images(self) -> GeminiImages:
        if self._gemini is None:
            # Imported (and its client built) on first use, as the chat providers are.
            from server.llm.gemini_images import GeminiImages

            self._gemini = GeminiImages(self._settings)
        return self._gemini

    async def aclose(self) -> None:
        gemini, self._gemini = self._gemini, None
        if gemini is not None:
            await gemini.aclose()
