"""Start and stop of what the Artifacts service holds open: the blob store (the S3 client)
and the image model client."""

from __future__ import annotations

from server.artifacts.storage import BlobStore
from server.llm import ImageGenerator


class ArtifactsLifecycle:
    def __init__(self, blobs: BlobStore, images: ImageGenerator) -> None:
        self._blobs = blobs
        self._images = images

    async def start(self) -> None:
        await self._blobs.start()

    async def stop(self) -> None:
        try:
            await self._images.aclose()
        finally:
            await self._blobs.close()
