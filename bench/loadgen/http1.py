"""A minimal HTTP/1.1 client for the load generators' SSE and REST calls: keep-alive
connections to one host, one request at a time on each, chunked or sized bodies.

Measured against a bare asyncio server on this machine, aiohttp's client takes about 0.5 ms
more than this one from a POST to the first server-sent event: a load generator built on it
would charge its own time to the route it measures (Envoy's added time to first token)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType


class Response:
    """A response's status and headers; its body is read with `chunks` (or `read`), after
    which the connection goes back to the pool unless the server closes it."""

    def __init__(
        self,
        pool: Http1Pool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
    ) -> None:
        self.status = status
        self.headers = headers
        self._pool = pool
        self._reader = reader
        self._writer = writer
        self._done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (chunked transfer encoding undone)."""
        reader = self._reader
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    break
                yield (await reader.readexactly(size + 2))[:-2]
        elif "content-length" in self.headers:
            length = int(self.headers["content-length"])
            if length:
                yield await reader.readexactly(length)
        else:  # the body runs to the end of the connection
            while data := await reader.read(65536):
                yield data
            self.headers["connection"] = "close"
        self._done = True

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def release(self, cut_short: bool = False) -> None:
        """Back to the pool once the body was read to its end and the server keeps it."""
        keep = self.headers.get("connection", "").lower() != "close"
        if self._done and keep and not cut_short:
            self._pool.put(self._reader, self._writer)
        else:
            self._writer.close()


class Http1Pool:
    """Idle keep-alive connections to `host:port`; a request takes one or opens one."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    @classmethod
    def of(cls, base_url: str) -> Http1Pool:
        """For `http://host:port`."""
        host, _, port = base_url.removeprefix("http://").partition(":")
        return cls(host, int(port))

    def put(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._idle.append((reader, writer))

    def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> _Request:
        head = [f"{method} {path} HTTP/1.1", f"host: {self._host}:{self._port}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"content-length: {len(body)}")
        return _Request(self, ("\r\n".join(head) + "\r\n\r\n").encode() + body)

    async def send(self, message: bytes) -> Response:
        # An idle connection the server has closed meanwhile fails before any answer: the
        # request then goes on another one.
        while self._idle:
            reader, writer = self._idle.pop()
            try:
                return await self._exchange(reader, writer, message)
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
        reader, writer = await asyncio.open_connection(self._host, self._port)
        return await self._exchange(reader, writer, message)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes
    ) -> Response:
        writer.write(message)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Response(self, reader, writer, int(status_line.split(" ", 2)[1]), headers)

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class _Request:
    """`async with pool.request(...) as response`: the connection is released on exit."""

    def __init__(self, pool: Http1Pool, message: bytes) -> None:
        self._pool = pool
        self._message = message
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        self._response = await self._pool.send(self._message)
        return self._response

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._response is not None:
            self._response.release(cut_short=kind is not None)
