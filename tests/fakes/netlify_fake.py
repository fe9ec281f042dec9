"""A fake Netlify API speaking the file-digest deploy wire format (docs.netlify.com, "API"):

    POST   /api/v1/sites/{site_id}/deploys      {"files": {"/index.html": sha1, …}}
           → 200 {"id", "state": "uploading" | "processing", "required": [sha1, …], …}
    PUT    /api/v1/deploys/{deploy_id}/files/{path}   (application/octet-stream body)
    GET    /api/v1/deploys/{deploy_id}          → the deploy, its `state`, `ssl_url`, …
    DELETE /api/v1/deploys/{deploy_id}          → 204 (404 when unknown)

Every request needs `Authorization: Bearer <token>` (else 401, Netlify's body). A deploy asks
only for the digests its site does not hold yet, stays "uploading" until every one of them
arrived (a file whose bytes do not match its digest is refused with 422), then answers
"processing" for `polls_before_ready` looks and "ready" after that, when it becomes the
site's published deploy (or "error", with `fail_processing`). `throttle(n)` answers the
next n requests 429 with Retry-After.

    async with NetlifyFake() as fake: NetlifyTarget(fake.site_id, fake.token, api_url=fake.url)
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

from aiohttp import web

TOKEN = "netlify-test-token"


@dataclass
class NetlifyUpload:
    deploy_id: str
    path: str
    data: bytes
    content_type: str


@dataclass
class FakeDeploy:
    id: str
    site_id: str
    files: dict[str, str]
    """"/path" → sha1"""
    pending: set[str]
    state: str
    polls: int = 0
    required: list[str] = field(default_factory=list)


class NetlifyFake:
    def __init__(
        self,
        *,
        token: str = TOKEN,
        site_id: str = "forge-site",
        site_url: str = "https://forge-site.netlify.app",
        polls_before_ready: int = 1,
    ) -> None:
        self.token = token
        self.site_id = site_id
        self.site_url = site_url
        self.polls_before_ready = polls_before_ready
        self.blobs: dict[str, bytes] = {}
        """What the site holds, by SHA-1 (from every deploy so far)."""
        self.deploys: dict[str, FakeDeploy] = {}
        self.uploads: list[NetlifyUpload] = []
        self.requests: list[tuple[str, str]] = []
        self.published: str | None = None
        self.fail_processing = False
        """Deploys end in state "error" instead of "ready" (a failed post-processing)."""
        self._throttled = 0
        self._retry_after = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def throttle(self, requests: int, retry_after: int = 0) -> None:
        self._throttled, self._retry_after = requests, retry_after

    def site_files(self) -> dict[str, bytes]:
        """The published site: path (no leading "/") → bytes."""
        if self.published is None:
            return {}
        files = self.deploys[self.published].files
        return {path.lstrip("/"): self.blobs[sha] for path, sha in files.items()}

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/api/v1/sites/{site_id}/deploys", self._create)
        app.router.add_put("/api/v1/deploys/{deploy_id}/files/{path:.+}", self._upload)
        app.router.add_get("/api/v1/deploys/{deploy_id}", self._get)
        app.router.add_delete("/api/v1/deploys/{deploy_id}", self._delete)
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

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(
                {"code": 401, "message": "Access Denied: Origin returned bad status 401"},
                status=401,
            )
        if self._throttled:
            self._throttled -= 1
            return web.json_response(
                {"code": 429, "message": "Rate limit exceeded"},
                status=429,
                headers={"Retry-After": str(self._retry_after)},
            )
        response: web.StreamResponse = await handler(request)
        return response

    def _view(self, deploy: FakeDeploy) -> dict[str, Any]:
        return {
            "id": deploy.id,
            "site_id": deploy.site_id,
            "state": deploy.state,
            "required": deploy.required,
            "required_functions": [],
            "url": self.site_url.replace("https://", "http://"),
            "ssl_url": self.site_url,
            "deploy_url": f"http://{deploy.id}--{self.site_id}.netlify.app",
            "deploy_ssl_url": f"https://{deploy.id}--{self.site_id}.netlify.app",
        }

    async def _create(self, request: web.Request) -> web.Response:
        if request.match_info["site_id"] != self.site_id:
            return web.json_response({"code": 404, "message": "Not Found"}, status=404)
        body = await request.json()
        files = body.get("files")
        if not isinstance(files, dict) or not all(
            isinstance(p, str) and p.startswith("/") for p in files
        ):
            return web.json_response({"code": 422, "message": "files"}, status=422)
        required = sorted({sha for sha in files.values() if sha not in self.blobs})
        deploy = FakeDeploy(
            id=f"deploy{next(self._ids):04d}",
            site_id=self.site_id,
            files=dict(files),
            pending=set(required),
            state="uploading" if required else "processing",
            required=required,
        )
        self.deploys[deploy.id] = deploy
        return web.json_response(self._view(deploy))

    async def _upload(self, request: web.Request) -> web.Response:
        deploy = self.deploys.get(request.match_info["deploy_id"])
        if deploy is None:
            return web.json_response({"code": 404, "message": "Not Found"}, status=404)
        path = "/" + unquote(request.match_info["path"])
        data = await request.read()
        sha = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if deploy.files.get(path) != sha:
            return web.json_response({"code": 422, "message": "digest mismatch"}, status=422)
        self.uploads.append(NetlifyUpload(deploy.id, path.lstrip("/"), data, request.content_type))
        self.blobs[sha] = data
        deploy.pending.discard(sha)
        if not deploy.pending and deploy.state == "uploading":
            deploy.state = "processing"
        return web.json_response({"id": sha, "path": path, "size": len(data)})

    async def _get(self, request: web.Request) -> web.Response:
        deploy = self.deploys.get(request.match_info["deploy_id"])
        if deploy is None:
            return web.json_response({"code": 404, "message": "Not Found"}, status=404)
        if deploy.state == "processing":
            deploy.polls += 1
            if deploy.polls > self.polls_before_ready and self.fail_processing:
                deploy.state = "error"
            elif deploy.polls > self.polls_before_ready:
                deploy.state = "ready"
                self.published = deploy.id
        return web.json_response(self._view(deploy))

    async def _delete(self, request: web.Request) -> web.Response:
        deploy = self.deploys.pop(request.match_info["deploy_id"], None)
        if deploy is None:
            return web.json_response({"code": 404, "message": "Not Found"}, status=404)
        if self.published == deploy.id:
            self.published = None
        return web.Response(status=204)
