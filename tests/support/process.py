"""`python -m server` as a child process, for tests of signals and restarts."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_SERVING = re.compile(rb"forge: serving on port (\d+)")


class ServerProcess:
    def __init__(
        self,
        env: Mapping[str, str],
        startup_timeout: float = 60.0,
        *,
        with_testing_service: bool = False,
        module: str | None = None,
    ) -> None:
        # `python -m server`, or the same main with the test-only TestingService added, or
        # another module running that main (`module`).
        self._module = module or (
            "tests.support.serve_testing" if with_testing_service else "server"
        )
        self._env = {
            **os.environ,
            "FORGE_LISTEN_ADDRESS": "127.0.0.1:0",
            # Keep sandbox containers apart from other servers' and start no warm pool.
            "FORGE_SANDBOX_NAMESPACE": f"test-process-{os.getpid()}",
            "FORGE_SANDBOX_POOL_SIZE": "0",
            # SIGTERM stops at once unless a test asks for a drain delay.
            "FORGE_SHUTDOWN_DRAIN_SECONDS": "0",
            # One process (not one per core) unless a test asks for workers.
            "FORGE_WORKERS": "1",
            **env,
        }
        self._startup_timeout = startup_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.output: list[bytes] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> int:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self._module,
            cwd=REPO_ROOT,
            env=self._env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        port_found: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(port_found))
        try:
            self.port = await asyncio.wait_for(port_found, self._startup_timeout)
        except (TimeoutError, EOFError) as error:
            await self.kill()
            raise AssertionError(f"server did not start:\n{self.text()}") from error
        return self.port

    async def _read(self, port_found: asyncio.Future[int]) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.output.append(line)
            match = _SERVING.search(line)
            if match and not port_found.done():
                port_found.set_result(int(match.group(1)))
        if not port_found.done():
            port_found.set_exception(EOFError("server exited before serving"))

    def text(self) -> str:
        return b"".join(self.output).decode(errors="replace")[-5000:]

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
