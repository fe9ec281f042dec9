"""PostgreSQL stopped under a running server: calls answer UNAVAILABLE DATABASE_UNAVAILABLE
with a RetryInfo, health goes NOT_SERVING; PostgreSQL back: health SERVING and the same
calls succeed, without a restart; the same under load (20 unary clients and 3 chat streams
calling all along: every failure is DATABASE_UNAVAILABLE, none hangs, all recover). The
server has a PostgreSQL of its own here, so the session-wide one stays up.

That PostgreSQL is an EmbeddedPostgres driven from a child process: its pg_ctl is forked
with a user switch, and a fork of this process (gRPC's threads running, its fork handlers
installed) now and then crashes before it runs pg_ctl."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import pytest
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.app import ForgeServer
from server.core.errors import ForgeError, Unavailable
from server.core.streaming import numbered
from server.db.unavailable import DATABASE_UNAVAILABLE, is_database_unavailable
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


# PostgreSQL stopped and started under load.

UNARY_CLIENTS = 20
CHAT_CLIENTS = 3
CALL_DEADLINE = 15.0
"""Far above what a call takes with or without PostgreSQL: only a hang reaches it."""
PACE = 0.05
"""Between one client's calls, so the load leaves the shared cores some room."""


@dataclass
class Outcomes:
    """What every client has seen, per phase (0 before the outage, 1 during, 2 after)."""

    phase: int = 0
    ok: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    failed: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    wrong: list[str] = field(default_factory=list)
    """Failures other than UNAVAILABLE DATABASE_UNAVAILABLE with a RetryInfo."""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def record(
        self, client: str, error: grpc.aio.AioRpcError | None, method: str = "Chat"
    ) -> float:
        """Notes a call's outcome; answers how long the client waits before its next call
        (what the server's RetryInfo asks after a failure)."""
        delay = PACE
        if error is None:
            self.ok[client, self.phase] += 1
        else:
            self.failed[client, self.phase] += 1
            if _is_database_unavailable(error):
                delay = retry_delay(error) or PACE
            else:
                self.wrong.append(f"{client} {method}: {error.code().name} {error.details()}")
        async with self.changed:
            self.changed.notify_all()
        return delay

    async def until(self, done: Callable[[], bool], what: str) -> None:
        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: done() or bool(self.wrong))

        try:
            await asyncio.wait_for(wait(), DEADLINE)
        except TimeoutError:
            raise AssertionError(f"not within {DEADLINE}s: {what}") from None
        assert not self.wrong, self.wrong[:5]

    def every(self, counts: dict[tuple[str, int], int], clients: list[str]) -> bool:
        return all(counts[client, self.phase] for client in clients)


def _is_database_unavailable(error: grpc.aio.AioRpcError) -> bool:
    if error.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    try:  # (asserts there are status details: grpc's own UNAVAILABLE has none)
        return retry_delay(error) is not None and error_info(error).reason == DATABASE_UNAVAILABLE
    except AssertionError:
        return False


async def _unary_client(
    name: str, channel: grpc.aio.Channel, account: Account, project_id: str, seen: Outcomes
) -> None:
    projects = projects_pb2_grpc.ProjectServiceStub(channel)
    metadata = account.metadata
    calls: list[tuple[str, object]] = [
        ("GetProject", projects_pb2.GetProjectRequest(project_id=project_id)),
        ("ListProjects", projects_pb2.ListProjectsRequest(page_size=10)),
        (
            "CreateTask",
            projects_pb2.CreateTaskRequest(
                project_id=project_id, task=projects_pb2.Task(title=f"load {name}")
            ),
        ),
    ]
    for turn in itertools.count():
        method, request = calls[turn % len(calls)]
        error: grpc.aio.AioRpcError | None = None
        try:
            await getattr(projects, method)(request, metadata=metadata, timeout=CALL_DEADLINE)
        except grpc.aio.AioRpcError as failure:
            error = failure
        await asyncio.sleep(await seen.record(name, error, method))


async def _chat_client(
    name: str, channel: grpc.aio.Channel, account: Account, project_id: str, seen: Outcomes
) -> None:
    agents = agents_pb2_grpc.AgentServiceStub(channel)
    conversation = await agents.CreateConversation(
        agents_pb2.CreateConversationRequest(project_id=project_id),
        metadata=account.metadata,
        timeout=CALL_DEADLINE,
    )
    request = agents_pb2.ChatRequest(conversation_id=conversation.id, content="word " * 20)
    while True:
        error: grpc.aio.AioRpcError | None = None
        events: list[agents_pb2.ChatEvent] = []
        try:
            async for event in agents.Chat(
                request, metadata=account.metadata, timeout=CALL_DEADLINE
            ):
                events.append(event)
        except grpc.aio.AioRpcError as failure:
            error = failure
        if error is None and events[-1].WhichOneof("event") != "completed":
            seen.wrong.append(f"{name}: ended without its completed event")
        if error is not None and events and events[-1].WhichOneof("event") != "error":
            # Once started, a stream that fails ends with an in-band error first.
            seen.wrong.append(f"{name}: {error.code().name} without an in-band error event")
        await asyncio.sleep(await seen.record(name, error))


async def test_database_stopped_and_started_under_load(
    own_postgres: OwnPostgres, tmp_path: Path, smtp: SmtpServer
) -> None:
    url = await own_postgres.start()
    settings = make_settings(
        url,
        tmp_path / "data",
        smtp_url=smtp.url,
        database_probe_seconds=0.5,
        echo_token_delay_ms=10.0,
    )
    app = ForgeServer(settings, TEST_MODULES)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            account = await register(channel)
            project = await projects_pb2_grpc.ProjectServiceStub(channel).CreateProject(
                projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="Load")),
                metadata=account.metadata,
                timeout=DEADLINE,
            )
            await _outage_under_load(channel, account, project.id, own_postgres, url)
    finally:
        await app.stop(grace=0)


async def _outage_under_load(
    channel: grpc.aio.Channel, account: Account, project_id: str, postgres: OwnPostgres, url: str
) -> None:
    seen = Outcomes()
    unary = [f"unary-{n}" for n in range(UNARY_CLIENTS)]
    chats = [f"chat-{n}" for n in range(CHAT_CLIENTS)]
    clients = [
        *(_unary_client(name, channel, account, project_id, seen) for name in unary),
        *(_chat_client(name, channel, account, project_id, seen) for name in chats),
    ]
    watch = HealthWatch(channel, "")
    tasks = [asyncio.create_task(client) for client in clients]
    try:
        await watch.until(SERVING)
        await seen.until(lambda: seen.every(seen.ok, unary + chats), "every client served")

        await postgres.stop()
        seen.phase = 1
        await watch.until(NOT_SERVING)
        await seen.until(
            lambda: seen.every(seen.failed, unary + chats), "every client saw the outage"
        )

        assert await postgres.start() == url
        seen.phase = 2
        await watch.until(SERVING)
        await seen.until(lambda: seen.every(seen.ok, unary + chats), "every client served again")
    finally:
        watch.cancel()
        for task in tasks:
            task.cancel()
        ended = await asyncio.gather(*tasks, return_exceptions=True)
    crashed = [e for e in ended if not isinstance(e, asyncio.CancelledError)]
    assert not crashed, crashed
    assert not seen.wrong, seen.wrong[:5]
