"""The floor under any server that runs commands with `docker exec`: the Engine API called
directly, asynchronously, over its unix socket (a minimal HTTP/1.1 client, no threads):
exec create, exec start (hijacked stream, read to its end), exec inspect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

SOCKET = "/var/run/docker.sock"


class EngineApi:
    def __init__(self, socket_path: str = SOCKET) -> None:
        self._path = socket_path
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._prefix = ""

    async def open(self) -> None:
        _, version = await self.request("GET", "/version")
        self._prefix = f"/v{version['ApiVersion']}"

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        reader, writer = (
            self._idle.pop() if self._idle else await asyncio.open_unix_connection(self._path)
        )
        data = json.dumps(body).encode() if body is not None else b""
        writer.write(
            f"{method} {self._prefix}{path} HTTP/1.1\r\nHost: docker\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        status, headers = await _head(reader)
        if "content-length" in headers:
            payload = await reader.readexactly(int(headers["content-length"]))
        else:  # chunked
            parts = []
            while size := int((await reader.readline()).strip(), 16):
                parts.append(await reader.readexactly(size))
                await reader.readline()
            await reader.readline()
            payload = b"".join(parts)
        self._idle.append((reader, writer))
        return status, json.loads(payload) if payload else None

    async def exec(self, container: str, argv: list[str]) -> int:
        """Runs `argv` in the container to its end; its exit code."""
        status, created = await self.request(
            "POST",
            f"/containers/{container}/exec",
            {"Cmd": argv, "AttachStdout": True, "AttachStderr": True, "User": "1000:1000"},
        )
        if status != 201:
            raise RuntimeError(f"exec create answered {status}: {created}")
        exec_id = created["Id"]
        reader, writer = await asyncio.open_unix_connection(self._path)
        body = b'{"Detach":false,"Tty":false}'
        writer.write(
            f"POST {self._prefix}/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
            "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await _head(reader)
        while await reader.read(65536):
            pass
        writer.close()
        while True:
            _, info = await self.request("GET", f"/exec/{exec_id}/json")
            if not info["Running"]:
                return int(info["ExitCode"])


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status = int((await reader.readline()).split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers
