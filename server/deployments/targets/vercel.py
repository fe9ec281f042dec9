"""Vercel, through its deployments API with file uploads.

1. `POST /v13/deployments` with `{"name", "files": [{"file", "sha", "size"}, …],
   "projectSettings": {"framework": null}, "target": "production"}`. When Vercel lacks
   some files it answers 400 `{"error": {"code": "missing_files", "missing": [sha1, …]}}`.
2. `POST /v2/files` (headers `x-vercel-digest: <sha1>`, `Content-Length`) sends one file per
   missing digest; then step 1 is repeated and creates the deployment. Files Vercel already
   has, from this or earlier deployments, are never sent.
3. `GET /v13/deployments/{id}` is polled until `readyState` is READY (or ERROR/CANCELED).

The live URL is "https://" + the deployment's `url`. `teamId` is passed as a query parameter
when the project belongs to a team. A publish that fails once the deployment exists deletes
it, as `remove` does (`DELETE /v13/deployments/{id}`; a deployment already gone is fine).
"""

from __future__ import annotations

import contextlib
import logging
import re
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

DEFAULT_API_URL = "https://api.vercel.com"
NAME = "Vercel"
READY = "READY"
FAILED_STATES = frozenset({"ERROR", "CANCELED"})
MISSING_FILES = "missing_files"
PROJECT_NAME = re.compile(r"^[a-z0-9._-]{1,100}$")


class VercelTarget:
    kind = "vercel"

    def __init__(
        self,
        project: str,
        token: str,
        *,
        team_id: str | None = None,
        api_url: str = DEFAULT_API_URL,
        options: HttpOptions | None = None,
    ) -> None:
        violations = Violations()
        violations.check(
            bool(PROJECT_NAME.match(project)),
            "project",
            "must be a Vercel project name: up to 100 lower-case letters, digits, '.', '_', '-'",
        )
        violations.check(bool(token.strip()), "token", "is required")
        violations.raise_if_any()
        self.project = project
        self.team_id = team_id
        self._token = token
        self._api_url = api_url
        self._options = options or HttpOptions()

    @property
    def _params(self) -> dict[str, str]:
        return {"teamId": self.team_id} if self.team_id else {}

    def _api(self) -> HttpApi:
        return HttpApi(NAME, self._api_url, self._token, self._options)

    async def publish(
        self, deployment_id: str, site: Site, progress: ProgressCallback
    ) -> Published:
        await progress(Progress(Phase.PREPARING))
        request = {
            "name": self.project,
            "files": [{"file": file.path, "sha": file.sha1, "size": file.size} for file in site],
            "projectSettings": {"framework": None},
            "target": "production",
            "meta": {"forgeDeploymentId": deployment_id},
        }
        async with self._api() as api:
            deployment, missing = await self._create(api, request)
            if deployment is None:
                await self._upload(api, site, missing, progress)
                deployment, missing = await self._create(api, request)
                if deployment is None:
                    raise errors.rejected(NAME, "files were still missing after the upload")
            deployment_id_at_vercel = str(deployment.get("id") or "")
            if not deployment_id_at_vercel:
                raise errors.rejected(NAME, "the deployment has no id")
            try:
                await progress(Progress(Phase.PROCESSING))
                ready = await self._wait_until_ready(api, deployment_id_at_vercel, deployment)
            except BaseException:
                await self._discard(api, deployment_id_at_vercel)
                raise
        return Published(
            url=f"https://{host}" if (host := ready.get("url") or deployment.get("url")) else "",
            handle={"deployment_id": deployment_id_at_vercel, "team_id": self.team_id},
        )

    async def _create(
        self, api: HttpApi, request: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """The new deployment, or None and the digests of the files Vercel lacks."""
        answer = await api.call(
            "POST", "/v13/deployments", json=request, params=self._params, expect=(400,)
        )
        if answer.status == 400:
            missing = _missing_digests(answer.body)
            if missing is None:
                raise errors.rejected(NAME, "HTTP 400")
            return None, list(dict.fromkeys(missing))
        return _object(answer.body), []

    async def _upload(
        self, api: HttpApi, site: Site, missing: list[str], progress: ProgressCallback
    ) -> None:
        by_digest = site.by_digest()
        if any(digest not in by_digest for digest in missing):
            raise errors.rejected(NAME, "it asked for a file the site does not have")
        files = [by_digest[digest] for digest in missing]
        counter = UploadCounter(progress, len(files), sum(file.size for file in files))
        await counter.start()

        def upload(file: SiteFile) -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                await api.call(
                    "POST",
                    "/v2/files",
                    data=file.data,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "x-vercel-digest": file.sha1,
                    },
                    params=self._params,
                )
                await counter.uploaded(file.size)

            return send

        await run_bounded([upload(file) for file in files], self._options.concurrency)

    async def _wait_until_ready(
        self, api: HttpApi, vercel_id: str, created: dict[str, Any]
    ) -> dict[str, Any]:
        if created.get("readyState") == READY:
            return created

        async def fetch() -> dict[str, Any]:
            answer = await api.call(
                "GET",
                f"/v13/deployments/{quote(vercel_id, safe='')}",
                params=self._params,
                missing="the deployment",
            )
            return _object(answer.body)

        deployment = await poll(
            fetch,
            lambda d: d.get("readyState") == READY or d.get("readyState") in FAILED_STATES,
            interval=self._options.poll_interval,
            timeout=self._options.ready_timeout,
            on_timeout=errors.timed_out(NAME, self._options.ready_timeout),
        )
        if deployment.get("readyState") != READY:
            raise errors.failed(NAME, str(deployment.get("readyState")))
        return deployment

    async def _discard(self, api: HttpApi, vercel_id: str) -> None:
        """Best effort: a publish that failed leaves no deployment behind."""
        with contextlib.suppress(ForgeError):
            await api.call(
                "DELETE",
                f"/v13/deployments/{quote(vercel_id, safe='')}",
                params=self._params,
                expect=(404,),
            )

    async def remove(self, handle: Handle) -> None:
        vercel_id = str(handle["deployment_id"])
        team_id = handle.get("team_id")
        params = {"teamId": str(team_id)} if team_id else {}
        async with self._api() as api:
            await api.call(
                "DELETE",
                f"/v13/deployments/{quote(vercel_id, safe='')}",
                params=params,
                expect=(404,),
            )
        log.info("removed Vercel deployment %s", vercel_id)


def _missing_digests(body: Any) -> list[str] | None:
    """The digests of a `missing_files` error, or None when the 400 is another error."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or error.get("code") != MISSING_FILES:
        return None
    return [str(digest) for digest in error.get("missing") or []]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.rejected(NAME, "an answer that is not a JSON object")
    return body
