"""Netlify, through its file-digest deploy API.

1. `POST /api/v1/sites/{site_id}/deploys` with `{"files": {"/path": sha1, …}}` creates a
   deploy; Netlify answers with its id and the digests it lacks (`required`).
2. `PUT /api/v1/deploys/{id}/files/{path}` (application/octet-stream) sends one file per
   required digest: files Netlify already has, from this or earlier deploys, are not sent.
3. `GET /api/v1/deploys/{id}` is polled until the state is "ready" (or "error"/"rejected").

The live URL is the site's (`ssl_url`). A publish that fails after step 1 deletes its deploy,
as does `remove` (`DELETE /api/v1/deploys/{id}`; a deploy already gone is fine).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from server.core.errors import ForgeError, Violations
from server.deployments.site import Site, SiteFile
from server.deployments.targets import errors
from server.deployments.targets.base import (
    Handle,
    Phase,
    Progress,
    ProgressCallback,
    Published,
    UploadCounter,
    run_bounded,
)
from server.deployments.targets.http import HttpApi, HttpOptions, poll

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.netlify.com"
NAME = "Netlify"
READY = "ready"
FAILED_STATES = frozenset({"error", "rejected"})


class NetlifyTarget:
    kind = "netlify"

    def __init__(
        self,
        site_id: str,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        options: HttpOptions | None = None,
    ) -> None:
        violations = Violations()
        violations.check(bool(site_id.strip()), "site_id", "is required")
        violations.check(bool(token.strip()), "token", "is required")
        violations.raise_if_any()
        self.site_id = site_id
        self._token = token
        self._api_url = api_url
        self._options = options or HttpOptions()

    def _api(self) -> HttpApi:
        return HttpApi(NAME, self._api_url, self._token, self._options)

    async def publish(
        self, deployment_id: str, site: Site, progress: ProgressCallback
    ) -> Published:
        await progress(Progress(Phase.PREPARING))
        async with self._api() as api:
            created = await api.call(
                "POST",
                f"/api/v1/sites/{quote(self.site_id, safe='')}/deploys",
                json={"files": {f"/{file.path}": file.sha1 for file in site}},
                missing="the site",
            )
            deploy = _object(created.body)
            deploy_id = str(deploy.get("id") or "")
            if not deploy_id:
                raise errors.rejected(NAME, "the deploy has no id")
            try:
                await self._upload(api, deploy_id, site, deploy.get("required"), progress)
                await progress(Progress(Phase.PROCESSING))
                ready = await self._wait_until_ready(api, deploy_id)
            except BaseException:
                await self._discard(api, deploy_id)
                raise
        url = str(ready.get("ssl_url") or ready.get("url") or ready.get("deploy_ssl_url") or "")
        return Published(url=url, handle={"site_id": self.site_id, "deploy_id": deploy_id})

    async def _upload(
        self,
        api: HttpApi,
        deploy_id: str,
        site: Site,
        required: Any,
        progress: ProgressCallback,
    ) -> None:
        by_digest = site.by_digest()
        digests = [str(digest) for digest in required or []]
        if any(digest not in by_digest for digest in digests):
            raise errors.rejected(NAME, "it asked for a file the site does not have")
        files = [by_digest[digest] for digest in dict.fromkeys(digests)]
        counter = UploadCounter(progress, len(files), sum(file.size for file in files))
        await counter.start()

        def upload(file: SiteFile) -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                await api.call(
                    "PUT",
                    f"/api/v1/deploys/{quote(deploy_id, safe='')}/files/{quote(file.path)}",
                    data=file.data,
                    headers={"Content-Type": "application/octet-stream"},
                    missing="the deploy",
                )
                await counter.uploaded(file.size)

            return send

        await run_bounded([upload(file) for file in files], self._options.concurrency)

    async def _wait_until_ready(self, api: HttpApi, deploy_id: str) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            answer = await api.call(
                "GET", f"/api/v1/deploys/{quote(deploy_id, safe='')}", missing="the deploy"
            )
            return _object(answer.body)

        deploy = await poll(
            fetch,
            lambda deploy: deploy.get("state") == READY or deploy.get("state") in FAILED_STATES,
            interval=self._options.poll_interval,
            timeout=self._options.ready_timeout,
            on_timeout=errors.timed_out(NAME, self._options.ready_timeout),
        )
        if deploy.get("state") != READY:
            raise errors.failed(NAME, str(deploy.get("state")))
        return deploy

    async def _discard(self, api: HttpApi, deploy_id: str) -> None:
        """Best effort: a failed publish leaves no half-uploaded deploy behind."""
        with contextlib.suppress(ForgeError):
            await api.call("DELETE", f"/api/v1/deploys/{quote(deploy_id, safe='')}", expect=(404,))

    async def remove(self, handle: Handle) -> None:
        deploy_id = str(handle["deploy_id"])
        async with self._api() as api:
            await api.call("DELETE", f"/api/v1/deploys/{quote(deploy_id, safe='')}", expect=(404,))
        log.info("removed Netlify deploy %s", deploy_id)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.rejected(NAME, "an answer that is not a JSON object")
    return body
