"""S3 on loopback: moto's standalone server (`ThreadedMotoServer`) in a child process.

The real aioboto3/botocore code path runs against it: HTTP, SigV4 signatures, multipart,
presigned URLs. It runs in its own process, not a thread of the test process, so that it
neither competes for the GIL nor shows up in tracemalloc figures of the code under test
(moto keeps every object in memory). It binds port 0 and reports the port it got, so there
is no free-port race.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import aioboto3

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # moto accepts any credentials
REGION = "us-east-1"

_CHILD = """
import sys
from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("moto listening on", server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # runs until the parent closes our stdin
server.stop()
"""


class MotoS3Server:
    def __init__(self, startup_timeout: float = 30.0) -> None:
        self._startup_timeout = startup_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,  # moto logs every request
        )
        assert self._proc.stdout is not None
        line = b""
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), self._startup_timeout)
            self.port = int(line.split()[-1])
        except (TimeoutError, ValueError, IndexError) as error:
            await self.stop()
            raise AssertionError(f"moto did not start (it said {line!r})") from error

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Any]:
        """A plain aioboto3 S3 client, for setting up and inspecting buckets."""
        session = aioboto3.Session(
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=REGION,
        )
        async with session.client("s3", endpoint_url=self.endpoint_url) as client:
            yield client

    async def create_bucket(self) -> str:
        """A new, empty bucket with a unique name."""
        name = f"test-{uuid.uuid4().hex[:20]}"
        async with self.client() as client:
            await client.create_bucket(Bucket=name)
        return name
