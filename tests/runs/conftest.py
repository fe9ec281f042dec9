"""Agent run fixtures: a Forge server of its own (its own database, real Docker sandboxes)
whose Anthropic, Gemini and OpenAI-compatible (`openai`) providers point at fakes that answer
one script per model turn, and helpers to start, watch and wait for runs.

(tests/runs/test_log.py and test_watch.py bring fixtures of their own for the log alone.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import grpc
import pytest
from aiohttp import web
from forge.agents.v1 import agents_pb2, agents_pb2_grpc

from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from tests.agents.support import Team, new_team
from tests.conftest import make_settings
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Script
from tests.support.accounts import Account, login, register
from tests.support.process import ServerProcess
from tests.support.testing_service import TEST_MODULES

ANTHROPIC_MODEL = "anthropic/claude-test"
GEMINI_MODEL = "gemini/gemini-test"
OPENAI_MODEL = "openai/gpt-test"
OPENAI_INPUT_USD = 2.5
OPENAI_OUTPUT_USD = 10.0
"""Prices (per million tokens) of OPENAI_MODEL on the runs server."""
DEADLINE = 60.0
"""The longest any run of these tests may take (sandboxes start in a few seconds)."""
TERMINAL = ("completed", "error")


class _Turns:
    """A fake provider that answers each request with the next script of `turns` (the
    last one again once they run out)."""

    turns: list[Script]
    script: Script

    async def record(
        self, request: web.Request, api_key: str
    ) -> tuple[dict[str, object], web.Response | None]:
        if self.turns:
            self.script = self.turns.pop(0)
        recorded: tuple[dict[str, object], web.Response | None]
        recorded = await super().record(request, api_key)  # type: ignore[misc]
        return recorded


class AnthropicTurns(_Turns, AnthropicFake):
    pass


class GeminiTurns(_Turns, GeminiFake):
    pass


class OpenAITurns(_Turns, OpenAIFake):
    pass


def script_turns(fake: AnthropicTurns | GeminiTurns | OpenAITurns, turns: Sequence[Script]) -> None:
    fake.turns = list(turns)
    fake.requests.clear()


@pytest.fixture(scope="package")
async def anthropic_turns() -> AsyncIterator[AnthropicTurns]:
    fake = AnthropicTurns()
    fake.turns = []
    async with fake:
        yield fake


@pytest.fixture(scope="package")
async def gemini_turns() -> AsyncIterator[GeminiTurns]:
    fake = GeminiTurns()
    fake.turns = []
    async with fake:
        yield fake


@pytest.fixture(scope="package")
async def openai_turns() -> AsyncIterator[OpenAITurns]:
    fake = OpenAITurns()
    fake.turns = []
    async with fake:
        yield fake


RUNS_ADMIN_EMAIL = "runs-admin@example.com"


@pytest.fixture(scope="package")
async def runs_database(postgres: EmbeddedPostgres) -> str:
    return await postgres.ensure_database("forge_runs")


@pytest.fixture(scope="package")
async def runs_server(
    runs_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_turns: AnthropicTurns,
    gemini_turns: GeminiTurns,
    openai_turns: OpenAITurns,
) -> AsyncIterator[ForgeServer]:
    settings = make_settings(
        runs_database,
        tmp_path_factory.mktemp("runs-data"),
        anthropic_api_key="sk-ant-forge-test",
        anthropic_base_url=anthropic_turns.base_url,
        gemini_api_key="gm-forge-test",
        gemini_base_url=gemini_turns.base_url,
        openai_endpoints={
            "openai": {
                "base_url": f"{openai_turns.base_url}/v1",
                "api_key": "sk-openai-forge-test",
                "models": ["gpt-test"],
            }
        },
        model_catalog={
            OPENAI_MODEL: {
                "input_usd_per_million_tokens": OPENAI_INPUT_USD,
                "output_usd_per_million_tokens": OPENAI_OUTPUT_USD,
            }
        },
        default_model="echo",
        echo_token_delay_ms=1.0,
        provider_retry_attempts=2,
        provider_retry_base_delay_seconds=0.01,
        provider_retry_max_delay_seconds=0.05,
        provider_timeout_seconds=10.0,
        run_delta_flush_ms=20.0,
        run_lease_seconds=6.0,
        run_claim_interval_seconds=1.0,
        runs_per_user=3,
    )
    app = ForgeServer(settings, TEST_MODULES)
    await app.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as chan:
        # The first account is admin.
        await register(chan, email=RUNS_ADMIN_EMAIL, display_name="Runs Admin")
    yield app
    await app.stop(grace=0)


@pytest.fixture(scope="package")
async def runs_channel(runs_server: ForgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runs_server.port}") as chan:
        yield chan


@pytest.fixture(scope="package")
async def runs_admin(runs_channel: grpc.aio.Channel) -> Account:
    return await login(runs_channel, RUNS_ADMIN_EMAIL)


@pytest.fixture
async def crew(runs_channel: grpc.aio.Channel) -> Team:
    """A project with an owner, a viewer and a stranger."""
    return await new_team(runs_channel)


# --- calls -----------------------------------------------------------------------------------


def agents(channel: grpc.aio.Channel) -> agents_pb2_grpc.AgentServiceAsyncStub:
    return agents_pb2_grpc.AgentServiceStub(channel)


async def start_run(
    channel: grpc.aio.Channel,
    account: Account,
    project_id: str,
    goal: str,
    *,
    agent_id: str = "coder",
    **fields: object,
) -> agents_pb2.Run:
    request = agents_pb2.StartRunRequest(
        project_id=project_id,
        agent_id=agent_id,
        goal=goal,
        **fields,  # type: ignore[arg-type]
    )
    return await agents(channel).StartRun(request, metadata=account.metadata, timeout=30)


@dataclass
class Watched:
    events: list[agents_pb2.RunEvent] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    """Notified at each event (see `wait_until`)."""

    async def add(self, event: agents_pb2.RunEvent) -> None:
        async with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()

    async def wait_until(
        self, predicate: Callable[[Watched], bool], timeout: float = DEADLINE
    ) -> None:
        """Returns once `predicate(self)` holds, checked at each event as it arrives."""
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: predicate(self))

    @property
    def kinds(self) -> list[str]:
        return [str(event.WhichOneof("event")) for event in self.events]

    @property
    def seqs(self) -> list[int]:
        return [event.seq for event in self.events]

    def of(self, kind: str) -> list[agents_pb2.RunEvent]:
        return [event for event in self.events if event.WhichOneof("event") == kind]

    @property
    def text(self) -> str:
        return "".join(event.delta.text for event in self.of("delta"))

    @property
    def last(self) -> agents_pb2.RunEvent:
        return self.events[-1]

    def tool_calls(self) -> list[tuple[str, str]]:
        return [(e.tool_call.name, e.tool_call.arguments) for e in self.of("tool_call")]


async def watch(
    channel: grpc.aio.Channel,
    account: Account,
    run_id: str,
    *,
    after_seq: int = 0,
    until: str | None = None,
    timeout: float = DEADLINE,
    into: Watched | None = None,
) -> Watched:
    """The run's events after `after_seq` until it ends (or until an event of kind `until`
    arrives), within `timeout`."""
    watched = into if into is not None else Watched()
    call = agents(channel).WatchRun(
        agents_pb2.WatchRunRequest(run_id=run_id, after_seq=after_seq),
        metadata=account.metadata,
        timeout=timeout,
    )
    try:
        async for event in call:
            await watched.add(event)
            if until is not None and event.WhichOneof("event") == until:
                break
    finally:
        call.cancel()
    return watched


async def get_run(channel: grpc.aio.Channel, account: Account, run_id: str) -> agents_pb2.Run:
    return await agents(channel).GetRun(
        agents_pb2.GetRunRequest(run_id=run_id), metadata=account.metadata, timeout=10
    )


async def wait_for_status(
    channel: grpc.aio.Channel,
    account: Account,
    run_id: str,
    status: agents_pb2.RunStatus.ValueType,
    timeout: float = DEADLINE,
) -> agents_pb2.Run:
    """Follows the run's events until GetRun shows `status` (no fixed sleeps: each check
    waits for the run's next event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = await get_run(channel, account, run_id)
        if run.status == status:
            return run
        left = deadline - loop.time()
        if left <= 0 or run.status in (
            agents_pb2.RUN_STATUS_SUCCEEDED,
            agents_pb2.RUN_STATUS_FAILED,
            agents_pb2.RUN_STATUS_CANCELLED,
        ):
            raise AssertionError(
                f"run {run_id} is {agents_pb2.RunStatus.Name(run.status)}, "
                f"not {agents_pb2.RunStatus.Name(status)}: {run}"
            )
        # The next event, whatever it is, may be the change.
        call = agents(channel).WatchRun(
            agents_pb2.WatchRunRequest(run_id=run_id, after_seq=run.last_seq),
            metadata=account.metadata,
            timeout=min(left, 5.0),
        )
        try:
            async for _ in call:
                break
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            call.cancel()


# --- more server processes on the same database ----------------------------------------------


def process_env(server: ForgeServer, data_dir: str, **overrides: str) -> dict[str, str]:
    """The environment of a `python -m server` sharing `server`'s database, secret and
    sandbox namespace (so accounts, runs and sandboxes are the same on both)."""
    settings = server.settings
    assert settings.database_url is not None
    assert settings.jwt_secret is not None
    return {
        "FORGE_DATABASE_URL": settings.database_url.get_secret_value(),
        "FORGE_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "FORGE_SANDBOX_NAMESPACE": settings.sandbox_namespace,
        "FORGE_DATA_DIR": data_dir,
        "FORGE_LOG_FORMAT": "text",
        "FORGE_LOG_LEVEL": "WARNING",
        "FORGE_BCRYPT_ROUNDS": "4",
        "FORGE_ECHO_TOKEN_DELAY_MS": str(settings.echo_token_delay_ms),
        "FORGE_RUN_LEASE_SECONDS": str(settings.run_lease_seconds),
        "FORGE_RUN_CLAIM_INTERVAL_SECONDS": str(settings.run_claim_interval_seconds),
        "FORGE_SHUTDOWN_GRACE_SECONDS": "1",
        **overrides,
    }


@pytest.fixture
async def second_server(
    runs_server: ForgeServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """Another server process on the runs database."""
    process = ServerProcess(process_env(runs_server, str(tmp_path_factory.mktemp("second"))))
    await process.start()
    yield process
    await process.kill()
