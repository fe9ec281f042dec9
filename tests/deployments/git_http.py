"""A git remote over HTTPS on loopback: git's own smart-HTTP server (`git http-backend`, a
CGI program) behind an aiohttp TLS server that demands HTTP Basic credentials, as GitHub
does for pushes. It records the Authorization headers it was sent."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web

from tests.support.certs import CertificateAuthority


class GitHttpsServer:
    def __init__(self, root: Path, *, user: str, token: str) -> None:
        self.root = root
        self.authorizations: list[str] = []
        self._expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        self._runner: web.AppRunner | None = None
        self.ca_file = root / "ca.pem"
        self.url = ""

    async def __aenter__(self) -> Self:
        authority = CertificateAuthority()
        cert, key = authority.server().write(self.root, "server")
        self.ca_file.write_bytes(authority.cert)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        port = self._runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        self.authorizations.append(authorization)
        if authorization != self._expected:
            return web.Response(
                status=401, headers={"WWW-Authenticate": 'Basic realm="git"'}, text="no"
            )
        body = await request.read()
        env = {
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "forge",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.root),
        }
        process = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        output, _ = await process.communicate(body)
        head, _, payload = output.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        return web.Response(status=status, headers=headers, body=payload)
