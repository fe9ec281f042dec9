"""What the deploy-target tests share: a progress log, sites, moto's request recorder."""

from __future__ import annotations

import json

import aiohttp

from server.deployments.site import Site
from server.deployments.targets.base import Progress
from tests.fakes.s3 import MotoS3Server


def make_site(files: dict[str, str | bytes]) -> Site:
    return Site.of(
        {path: body.encode() if isinstance(body, str) else body for path, body in files.items()}
    )


class ProgressLog:
    """A progress callback that keeps what it was told."""

    def __init__(self) -> None:
        self.seen: list[Progress] = []

    async def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)

    @property
    def phases(self) -> list[str]:
        return list(dict.fromkeys(progress.phase.value for progress in self.seen))

    @property
    def last(self) -> Progress:
        return self.seen[-1]


class Recorder:
    """Moto's request recorder: what reached S3 between `start` and `stop`."""

    def __init__(self, server: MotoS3Server) -> None:
        self._base = f"{server.endpoint_url}/moto-api/recorder"

    async def _post(self, action: str) -> None:
        async with aiohttp.ClientSession() as session, session.post(f"{self._base}/{action}"):
            pass

    async def start(self) -> None:
        await self._post("reset-recording")
        await self._post("start-recording")

    async def stop(self) -> list[tuple[str, str]]:
        """(method, URL) of each request recorded."""
        await self._post("stop-recording")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self._base}/download-recording") as response,
        ):
            text = await response.text()
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [(entry["method"], entry["url"]) for entry in entries]
