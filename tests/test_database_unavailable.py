"""PostgreSQL stopped under a running server: calls answer UNAVAILABLE DATABASE_UNAVAILABLE
with a RetryInfo, health goes NOT_SERVING; PostgreSQL back: health SERVING and the same
calls succeed, without a restart. The server has a PostgreSQL of its own here, so the
session-wide one stays up.

That PostgreSQL is an EmbeddedPostgres driven from a child process: its pg_ctl is forked
with a user switch, and a fork of this process (gRPC's threads running, its fork handlers
installed) now and then crashes before it runs pg_ctl."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.app import ForgeServer
from server.core.errors import ForgeError, Unavailable
from server.core.streaming import numbered
from server.db.unavailable import is_database_unavailable
from tests.conftest import REPO_ROOT, make_settings
from tests.support.accounts import Account, register
from tests.support.mailbox import SmtpServer
from tests.support.rpc import error_info, status_of
from tests.support.testing_service import TEST_MODULES

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
WATCHED = ["", "forge.projects.v1.ProjectService", "forge.sandbox.v1.SandboxService"]
DEADLINE = 30.0


class HealthWatch:
    """A Watch stream per service; `until(status)` waits (with a deadline) for it."""

    def __init__(self, channel: grpc.aio.Channel, service: str) -> None:
        stub = health_pb2_grpc.HealthStub(channel)
        self._call = stub.Watch(health_pb2.HealthCheckRequest(service=service))
        self.service = service

    async def until(self, status: int) -> None:
        async def wait() -> None:
            while (await self._call.read()).status != status:
                pass

        try:
            await asyncio.wait_for(wait(), DEADLINE)
        except TimeoutError:
            raise AssertionError(f"{self.service!r} not {status} within {DEADLINE}s") from None

    def cancel(self) -> None:
        self._call.cancel()


_CONTROL = """
import asyncio, sys
from pathlib import Path
from server.db.embedded import EmbeddedPostgres

pg = EmbeddedPostgres(Path(sys.argv[1]))
running = False
for line in sys.stdin:
    running = line.strip() == "start"
    if running:
        asyncio.run(pg.start())
        print(asyncio.run(pg.ensure_database("forge_outage")), flush=True)
    else:
        asyncio.run(pg.stop())
        print("stopped", flush=True)
if running:
    asyncio.run(pg.stop())
"""


class OwnPostgres:
    """An EmbeddedPostgres in a child process: `start()` answers the database URL."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    async def _command(self, command: str) -> str:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(f"{command}\n".encode())
        answer = await asyncio.wait_for(self._process.stdout.readline(), DEADLINE)
        assert answer, f"the PostgreSQL control process ended on {command!r}"
        return answer.decode().strip()

    async def start(self) -> str:
        return await self._command("start")

    async def stop(self) -> None:
        assert await self._command("stop") == "stopped"


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[OwnPostgres]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CONTROL,
        str(tmp_path / "pgdata"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    assert process.stdin is not None
    try:
        yield OwnPostgres(process)
    finally:
        process.stdin.close()  # the control process stops PostgreSQL if it runs, and ends
        await asyncio.wait_for(process.wait(), DEADLINE)


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    for detail in status_of(error).details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            seconds: float = info.retry_delay.ToTimedelta().total_seconds()
            return seconds
    return None


async def test_database_down_is_unavailable_and_health_follows_it(
    own_postgres: OwnPostgres, tmp_path: Path, smtp: SmtpServer
) -> None:
    url = await own_postgres.start()
    settings = make_settings(url, tmp_path / "data", smtp_url=smtp.url, database_probe_seconds=0.5)
    app = ForgeServer(settings, TEST_MODULES)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            account = await register(channel)
            watches = [HealthWatch(channel, service) for service in WATCHED]
            try:
                for watch in watches:
                    await watch.until(SERVING)
                await _outage(channel, account, own_postgres, watches, url)
            finally:
                for watch in watches:
                    watch.cancel()
    finally:
        await app.stop(grace=0)


async def _outage(
    channel: grpc.aio.Channel,
    account: Account,
    postgres: OwnPostgres,
    watches: list[HealthWatch],
    url: str,
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    projects = projects_pb2_grpc.ProjectServiceStub(channel)

    async def get_current_user() -> object:
        return await auth.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=account.metadata, timeout=DEADLINE
        )

    async def create_project() -> object:
        return await projects.CreateProject(
            projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="Outage")),
            metadata=account.metadata,
            timeout=DEADLINE,
        )

    await postgres.stop()
    for call in (get_current_user, create_project):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call()
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
        assert error_info(failure.value).reason == "DATABASE_UNAVAILABLE"
        assert retry_delay(failure.value) == 1.0
    for watch in watches:
        await watch.until(NOT_SERVING)

    assert await postgres.start() == url
    for watch in watches:
        await watch.until(SERVING)
    await get_current_user()
    await create_project()


def test_a_bug_is_not_the_database_being_unavailable() -> None:
    def write_a_file() -> None:
        raise FileNotFoundError("/nowhere/file")  # an OSError of ours, not the driver's

    with pytest.raises(FileNotFoundError) as ours:
        write_a_file()
    assert not is_database_unavailable(ours.value)
    assert not is_database_unavailable(RuntimeError("a bug"))
    misuse = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    assert not is_database_unavailable(misuse)
    assert is_database_unavailable(asyncpg.InterfaceError("connection is closed"))
    wrapped = RuntimeError("while saving")
    wrapped.__cause__ = asyncpg.exceptions.CannotConnectNowError("the database is starting up")
    assert is_database_unavailable(wrapped)


async def test_a_stream_whose_database_is_gone_ends_with_database_unavailable() -> None:
    async def source() -> AsyncGenerator[str, None]:
        yield "delta"
        raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")

    def error_event(error: ForgeError, seq: int) -> tuple[int, str]:
        return seq, error.reason

    events: list[object] = []

    async def read() -> None:
        async for message in numbered(source(), lambda event, seq: (seq, event), error_event):
            events.append(message)

    with pytest.raises(Unavailable) as ended:
        await read()
    assert events == [(1, "delta"), (2, "DATABASE_UNAVAILABLE")]
    assert ended.value.reason == "DATABASE_UNAVAILABLE"
    assert ended.value.retry_after is not None
