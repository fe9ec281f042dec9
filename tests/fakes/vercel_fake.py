"""A fake Vercel REST API speaking the deployments-with-file-uploads wire format
(vercel.com/docs/rest-api):

    POST   /v2/files                 body: the file; headers x-vercel-digest (SHA-1),
                                     Content-Length → 200 {}
    POST   /v13/deployments          {"name", "files": [{"file", "sha", "size"}], …}
           → 400 {"error": {"code": "missing_files", "missing": [sha1, …]}} while any file
             is not uploaded yet; else 200 {"id": "dpl_…", "url", "readyState": "QUEUED", …}
    GET    /v13/deployments/{id}     → readyState QUEUED → BUILDING → READY
    DELETE /v13/deployments/{id}     → 200 {"uid", "state": "DELETED"} (404 when unknown)

Every request needs `Authorization: Bearer <token>` (else 403 `invalidToken`, as Vercel
answers). `teamId` query parameters are recorded. A deployment is created only once every
file is there, and becomes READY after `polls_before_ready` looks (BUILDING until then),
when it is the project's production deployment (ERROR with `fail_builds`). `throttle(n)`
answers the next n requests 429 with Retry-After.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

TOKEN = "vercel-test-token"


@dataclass
class VercelUpload:
    digest: str
    data: bytes
    content_type: str
    content_length: int


@dataclass
class FakeDeployment:
    id: str
    name: str
    url: str
    files: dict[str, str]
    """path → sha1"""
    target: str | None
    state: str = "QUEUED"
    polls: int = 0


class VercelFake:
    def __init__(self, *, token: str = TOKEN, polls_before_ready: int = 1) -> None:
        self.token = token
        self.polls_before_ready = polls_before_ready
        self.blobs: dict[str, bytes] = {}
        self.uploads: list[VercelUpload] = []
        self.deployments: dict[str, FakeDeployment] = {}
        self.create_bodies: list[dict[str, Any]] = []
        self.team_ids: list[str | None] = []
        self.fail_builds = False
        """Deployments end in readyState ERROR instead of READY."""
        self.production: dict[str, str] = {}
        """project name → id of its READY production deployment"""
        self._throttled = 0
        self._retry_after = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def throttle(self, requests: int, retry_after: int = 0) -> None:
        self._throttled, self._retry_after = requests, retry_after

    def site_files(self, project: str) -> dict[str, bytes]:
        """The project's production site: path → bytes."""
        deployment_id = self.production.get(project)
        if deployment_id is None:
            return {}
        files = self.deployments[deployment_id].files
        return {path: self.blobs[sha] for path, sha in files.items()}

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/v2/files", self._upload)
        app.router.add_post("/v13/deployments", self._create)
        app.router.add_get("/v13/deployments/{id}", self._get)
        app.router.add_delete("/v13/deployments/{id}", self._delete)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- wire format -----------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
        return web.json_response(
            {"error": {"code": code, "message": message, **extra}}, status=status
        )

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.team_ids.append(request.query.get("teamId"))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(403, "forbidden", "Not authorized", invalidToken=True)
        if self._throttled:
            self._throttled -= 1
            return web.json_response(
                {"error": {"code": "rate_limited", "message": "Rate limit exceeded"}},
                status=429,
                headers={"Retry-After": str(self._retry_after)},
            )
        response: web.StreamResponse = await handler(request)
        return response

    async def _upload(self, request: web.Request) -> web.Response:
        digest = request.headers.get("x-vercel-digest", "")
        data = await request.read()
        if hashlib.sha1(data, usedforsecurity=False).hexdigest() != digest:
            return self._error(400, "invalid_digest", "the digest does not match the file")
        if request.content_length != len(data):
            return self._error(400, "invalid_content_length", "Content-Length is wrong")
        self.uploads.append(VercelUpload(digest, data, request.content_type, len(data)))
        self.blobs[digest] = data
        return web.json_response({})

    def _view(self, deployment: FakeDeployment) -> dict[str, Any]:
        return {
            "id": deployment.id,
            "name": deployment.name,
            "url": deployment.url,
            "readyState": deployment.state,
            "target": deployment.target,
            "alias": [f"{deployment.name}.vercel.app"] if deployment.state == "READY" else [],
        }

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.create_bodies.append(body)
        files = body.get("files")
        if not isinstance(body.get("name"), str) or not isinstance(files, list):
            return self._error(400, "bad_request", "name and files are required")
        missing = sorted({f["sha"] for f in files if f["sha"] not in self.blobs})
        if missing:
            return self._error(400, "missing_files", "Missing files", missing=missing)
        number = next(self._ids)
        deployment = FakeDeployment(
            id=f"dpl_{number:06d}",
            name=body["name"],
            url=f"{body['name']}-{number:06d}.vercel.app",
            files={f["file"]: f["sha"] for f in files},
            target=body.get("target"),
        )
        self.deployments[deployment.id] = deployment
        return web.json_response(self._view(deployment))

    async def _get(self, request: web.Request) -> web.Response:
        deployment = self.deployments.get(request.match_info["id"])
        if deployment is None:
            return self._error(404, "not_found", "Deployment not found")
        if deployment.state != "READY":
            deployment.polls += 1
            deployment.state = "BUILDING"
            if deployment.polls > self.polls_before_ready and self.fail_builds:
                deployment.state = "ERROR"
            elif deployment.polls > self.polls_before_ready:
                deployment.state = "READY"
                if deployment.target == "production":
                    self.production[deployment.name] = deployment.id
        return web.json_response(self._view(deployment))

    async def _delete(self, request: web.Request) -> web.Response:
        deployment = self.deployments.pop(request.match_info["id"], None)
        if deployment is None:
            return self._error(404, "not_found", "Deployment not found")
        if self.production.get(deployment.name) == deployment.id:
            del self.production[deployment.name]
        return web.json_response({"uid": deployment.id, "state": "DELETED"})
