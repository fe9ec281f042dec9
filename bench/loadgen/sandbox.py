"""Sandbox latencies through gRPC, one phase per run, with the docker CLI peer taking turns.

Phases (`{"phase": ...}`):
- `create_warm`: CreateSandbox taken from the warm pool (the pool is full before each call),
  each followed by `docker run -d` of a container with the same options;
- `create_cold`: CreateSandbox with limits the pool does not hold (a container is started),
  each followed by `docker run -d`;
- `exec`: Exec of `true` and of `python3 -c 'print(1)'` in one warm sandbox, request to
  `exit`, each followed by the same `docker exec` through the CLI and through the Engine API;
- `run_code`: RunCode python hello-world, request to `exit` (the pool is full before each).

Every sandbox a phase creates is deleted before it ends; peer containers too.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc

from bench.loadgen.common import args, emit
from bench.loadgen.sandbox_docker_api import EngineApi

PASSWORD = "Bench-Passw0rd"
RUNTIME = "python"
TRUE = ["true"]
PYTHON_PRINT = ["python3", "-c", "print(1)"]
HELLO = 'print("hello, world")'
MiB = 2**20

Metadata = tuple[tuple[str, str], ...]


class Client:
    def __init__(self, channel: grpc.aio.Channel, metadata: Metadata, project_id: str) -> None:
        self.stub = sandbox_pb2_grpc.SandboxServiceStub(channel)
        self.metadata = metadata
        self.project_id = project_id

    @classmethod
    async def sign_up(cls, channel: grpc.aio.Channel) -> Client:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        email = f"bench-sandbox-{secrets.token_hex(4)}@example.com"
        registered = await auth.Register(
            auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=30
        )
        metadata = (("authorization", f"Bearer {registered.tokens.access_token}"),)
        projects = projects_pb2_grpc.ProjectServiceStub(channel)
        project = await projects.CreateProject(
            projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="bench sandbox")),
            metadata=metadata,
            timeout=30,
        )
        return cls(channel, metadata, project.id)

    async def pool_ready(self) -> int:
        response = await self.stub.ListRuntimes(
            sandbox_pb2.ListRuntimesRequest(), metadata=self.metadata, timeout=10
        )
        return next(r.warm_pool_ready for r in response.runtimes if r.name == RUNTIME)

    async def wait_pool_full(self, size: int, timeout: float = 30) -> None:
        deadline = time.perf_counter() + timeout
        while await self.pool_ready() < size:
            if time.perf_counter() > deadline:
                raise TimeoutError("the warm pool did not fill up")
            await asyncio.sleep(0.02)

    async def create(self, limits: sandbox_pb2.SandboxLimits | None = None) -> sandbox_pb2.Sandbox:
        return await self.stub.CreateSandbox(
            sandbox_pb2.CreateSandboxRequest(
                project_id=self.project_id,
                sandbox=sandbox_pb2.Sandbox(runtime=RUNTIME, limits=limits),
            ),
            metadata=self.metadata,
            timeout=60,
        )

    async def delete(self, sandbox_id: str) -> None:
        await self.stub.DeleteSandbox(
            sandbox_pb2.DeleteSandboxRequest(sandbox_id=sandbox_id),
            metadata=self.metadata,
            timeout=60,
        )

    async def exec(self, sandbox_id: str, argv: Sequence[str]) -> Timing:
        started = time.perf_counter()
        return await self._stream(
            self.stub.Exec(
                sandbox_pb2.ExecRequest(sandbox_id=sandbox_id, argv=list(argv)),
                metadata=self.metadata,
                timeout=30,
            ),
            started,
        )

    async def run_code(self, code: str) -> Timing:
        started = time.perf_counter()
        return await self._stream(
            self.stub.RunCode(
                sandbox_pb2.RunCodeRequest(
                    project_id=self.project_id, language="python", code=code
                ),
                metadata=self.metadata,
                timeout=30,
            ),
            started,
        )

    @staticmethod
    async def _stream(call: Any, started: float) -> Timing:
        timing = Timing()
        async for event in call:
            kind = event.WhichOneof("event")
            now = time.perf_counter() - started
            if kind == "started":
                timing.started = now
            elif kind == "stdout" and timing.first_output != timing.first_output:
                timing.first_output = now
            elif kind == "exit":
                if event.exit.exit_code != 0:
                    raise RuntimeError(f"command failed: {event.exit}")
                timing.exited = now
                return timing
            elif kind == "error":
                raise RuntimeError(f"execution error: {event.error}")
        raise RuntimeError("the stream ended without an exit event")


@dataclass
class Timing:
    """Seconds from the request to the `started` event, the first stdout and `exit`."""

    started: float = float("nan")
    first_output: float = float("nan")
    exited: float = float("nan")


class Timings:
    def __init__(self) -> None:
        self.all: list[Timing] = []

    def add(self, timing: Timing) -> None:
        self.all.append(timing)

    def result(self) -> dict[str, list[float]]:
        return {
            "times": [t.exited for t in self.all],
            "started": [t.started for t in self.all],
            "first_output": [t.first_output for t in self.all],
        }


# --- phases: Forge, with its peer taking turns -------------------------------------------
# Each Forge call is followed by the peer doing the same work, so both see the same machine
# (on a noisy one, measuring them minutes apart would make the ratio meaningless).


class Peer:
    """The docker CLI (and, for exec, the Engine API called directly) on containers made
    like Forge's sandboxes, labelled for clean-up."""

    def __init__(self, image: str, label: str) -> None:
        self.image = image
        self.label = label
        self.container = ""
        self.api = EngineApi()

    async def __aenter__(self) -> Peer:
        self.container = f"forge-bench-peer-{secrets.token_hex(4)}"
        await docker(*docker_run_argv(self.image, self.container, self.label))
        await self.api.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.api.close()
        await docker("docker", "rm", "-f", "-v", self.container)

    async def run(self) -> float:
        """Seconds for `docker run -d` (the container is removed afterwards, untimed)."""
        name = f"forge-bench-peer-{secrets.token_hex(4)}"
        try:
            elapsed, _ = await timed_docker(*docker_run_argv(self.image, name, self.label))
        finally:
            await docker("docker", "rm", "-f", "-v", name)
        return elapsed

    async def cli_exec(self, argv: Sequence[str]) -> float:
        elapsed, _ = await timed_docker("docker", "exec", self.container, *argv)
        return elapsed

    async def api_exec(self, argv: Sequence[str]) -> float:
        started = time.perf_counter()
        if await self.api.exec(self.container, list(argv)) != 0:
            raise RuntimeError(f"{argv} failed")
        return time.perf_counter() - started


async def create_warm(client: Client, peer: Peer, n: int, pool_size: int) -> dict[str, Any]:
    times: list[float] = []
    runs: list[float] = []
    warm: list[bool] = []
    for _ in range(n):
        await client.wait_pool_full(pool_size)
        started = time.perf_counter()
        sandbox = await client.create()
        times.append(time.perf_counter() - started)
        warm.append(sandbox.warm)
        await client.delete(sandbox.id)
        await client.wait_pool_full(pool_size)  # the refill would compete with the peer
        runs.append(await peer.run())
    return {"times": times, "docker_run": runs, "all_warm": all(warm)}


async def create_cold(client: Client, peer: Peer, n: int, pool_size: int) -> dict[str, Any]:
    # Limits other than the runtime's defaults: the pool cannot serve them.
    limits = sandbox_pb2.SandboxLimits(memory_bytes=320 * MiB)
    times: list[float] = []
    runs: list[float] = []
    cold: list[bool] = []
    await client.wait_pool_full(pool_size)
    for _ in range(n):
        started = time.perf_counter()
        sandbox = await client.create(limits)
        times.append(time.perf_counter() - started)
        cold.append(not sandbox.warm)
        await client.delete(sandbox.id)
        runs.append(await peer.run())
    return {"times": times, "docker_run": runs, "all_cold": all(cold)}


async def exec_phase(client: Client, peer: Peer, n: int, warmup: int) -> dict[str, Any]:
    sandbox = await client.create()
    try:
        for _ in range(warmup):
            await client.exec(sandbox.id, TRUE)
            await peer.cli_exec(TRUE)
            await peer.api_exec(TRUE)
        result: dict[str, Any] = {"warm": sandbox.warm}
        for name, argv in (("true", TRUE), ("python", PYTHON_PRINT)):
            timings = Timings()
            cli: list[float] = []
            api: list[float] = []
            for _ in range(n):
                timings.add(await client.exec(sandbox.id, argv))
                cli.append(await peer.cli_exec(argv))
                api.append(await peer.api_exec(argv))
            result[name] = {**timings.result(), "docker_exec": cli, "api_exec": api}
        return result
    finally:
        await client.delete(sandbox.id)


async def run_code_phase(client: Client, n: int, pool_size: int) -> dict[str, Any]:
    timings = Timings()
    for _ in range(n):
        await client.wait_pool_full(pool_size)
        timings.add(await client.run_code(HELLO))
    return timings.result()


# --- the peer: the docker CLI ------------------------------------------------------------


def docker_run_argv(image: str, name: str, label: str) -> list[str]:
    """`docker run -d` with the options Forge gives a sandbox container (same limits)."""
    return [
        "docker",
        "run",
        "-d",
        "--name",
        name,
        "--label",
        label,
        "--user",
        "1000:1000",
        "--workdir",
        "/workspace",
        "--hostname",
        "sandbox",
        "--env",
        "HOME=/tmp",
        "--network",
        "none",
        "--read-only",
        "--memory",
        str(256 * MiB),
        "--memory-swap",
        str(256 * MiB),
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--tmpfs",
        f"/tmp:rw,nosuid,nodev,noexec,size={64 * MiB},mode=1777",  # noqa: S108
        "--mount",
        "type=volume,dst=/workspace,volume-driver=local,volume-opt=type=tmpfs,"
        f'volume-opt=device=tmpfs,"volume-opt=o=size={128 * MiB},uid=1000,gid=1000,'
        'mode=0755,nosuid,nodev"',
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--log-driver",
        "none",
        image,
    ]


async def docker(*argv: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {err.decode()}")
    return out


async def timed_docker(*argv: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    out = await docker(*argv)
    return time.perf_counter() - started, out


async def main() -> None:
    params = args()
    phase: str = params["phase"]
    n: int = params["n"]
    pool_size: int = params["pool_size"]
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{params['port']}") as channel,
        Peer(params["image"], params["label"]) as peer,
    ):
        client = await Client.sign_up(channel)
        if phase == "create_warm":
            result = await create_warm(client, peer, n, pool_size)
        elif phase == "create_cold":
            result = await create_cold(client, peer, n, pool_size)
        elif phase == "exec":
            result = await exec_phase(client, peer, n, params["warmup"])
        elif phase == "run_code":
            result = await run_code_phase(client, n, pool_size)
        else:
            raise SystemExit(f"unknown phase {phase}")
    emit(result)


if __name__ == "__main__":
    asyncio.run(main())
