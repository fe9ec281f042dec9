"""AgentService fixtures: a Forge server of its own (its own database) whose Anthropic and
Gemini providers and OpenAI-compatible endpoints (`openai` with a key, `ollama` without) point
at the fake provider servers, a real Envoy in front of it, and a team
with a project per test.

The fakes are shared by the whole package; each test gives them its script (`rescript`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import grpc
import pytest
from forge.artifacts.v1 import artifacts_pb2

from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.app import ForgeServer
from server.core.hooks import CompletedAnswer, Offers
from server.core.module import BuildContext, ServiceModule
from server.db.embedded import EmbeddedPostgres
from tests.agents.support import Team, new_team
from tests.conftest import DESCRIPTOR, make_settings
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.openai_fake import OpenAIFake
from tests.support.accounts import Account, login, register
from tests.support.testing_service import TEST_MODULES

ANTHROPIC_MODEL = "anthropic/claude-test"
GEMINI_MODEL = "gemini/gemini-test"
OPENAI_MODEL = "openai/gpt-test"
OLLAMA_MODEL = "ollama/llama3.2"
OPENAI_API_KEY = "sk-openai-forge-test"
OPENAI_INPUT_USD_PER_MILLION = 2.5
OPENAI_OUTPUT_USD_PER_MILLION = 10.0
"""Prices of OPENAI_MODEL in the test server's model catalog (usage cost)."""
ADMIN_EMAIL = "agents-admin@example.com"
DAILY_TOKEN_QUOTA = 1000
HISTORY_TOKEN_BUDGET = 400
ECHO_DELAY_MS = 5.0
ARTIFACT_MARKER = "```"


class RecordingListener:
    """An answer listener like the Artifacts service's: one artifact per answer with code."""

    def __init__(self) -> None:
        self.answers: list[CompletedAnswer] = []

    async def answer_completed(self, answer: CompletedAnswer) -> Sequence[Any]:
        self.answers.append(answer)
        if ARTIFACT_MARKER not in answer.text:
            return []
        return [
            artifacts_pb2.Artifact(
                id=f"artifact-of-{answer.message_id}",
                project_id=str(answer.project_id),
                conversation_id=str(answer.conversation_id),
                message_id=str(answer.message_id),
                filename="main.py",
            )
        ]


@pytest.fixture(scope="package")
async def anthropic_fake() -> AsyncIterator[AnthropicFake]:
    fake = AnthropicFake()
    async with fake:
        yield fake


@pytest.fixture(scope="package")
async def gemini_fake() -> AsyncIterator[GeminiFake]:
    fake = GeminiFake()
    async with fake:
        yield fake


@pytest.fixture(scope="package")
async def openai_fake() -> AsyncIterator[OpenAIFake]:
    fake = OpenAIFake()
    async with fake:
        yield fake


@pytest.fixture(scope="package")
async def ollama_fake() -> AsyncIterator[OpenAIFake]:
    fake = OpenAIFake()
    async with fake:
        yield fake


@pytest.fixture(scope="package")
def answer_listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture(scope="package")
async def agents_database(postgres: EmbeddedPostgres) -> str:
    return await postgres.ensure_database("forge_agents")


@pytest.fixture(scope="package")
async def agents_server(
    agents_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_fake: AnthropicFake,
    gemini_fake: GeminiFake,
    openai_fake: OpenAIFake,
    ollama_fake: OpenAIFake,
    answer_listener: RecordingListener,
) -> AsyncIterator[ForgeServer]:
    settings = make_settings(
        agents_database,
        tmp_path_factory.mktemp("agents-data"),
        anthropic_api_key="sk-ant-forge-test",
        anthropic_base_url=anthropic_fake.base_url,
        gemini_api_key="gm-forge-test",
        gemini_base_url=gemini_fake.base_url,
        openai_endpoints={
            "openai": {
                "base_url": f"{openai_fake.base_url}/v1",
                "api_key": OPENAI_API_KEY,
                "models": ["gpt-test"],
            },
            "ollama": {
                "base_url": f"{ollama_fake.base_url}/v1",
                "models": [
                    {"name": "llama3.2", "context_window_tokens": 8192, "max_output_tokens": 2048}
                ],
            },
        },
        default_model="echo",
        echo_token_delay_ms=ECHO_DELAY_MS,
        provider_retry_attempts=3,
        provider_retry_base_delay_seconds=0.01,
        provider_retry_max_delay_seconds=0.05,
        provider_timeout_seconds=5.0,
        daily_token_quota=DAILY_TOKEN_QUOTA,
        history_token_budget=HISTORY_TOKEN_BUDGET,
        model_catalog={
            OPENAI_MODEL: {
                "input_usd_per_million_tokens": OPENAI_INPUT_USD_PER_MILLION,
                "output_usd_per_million_tokens": OPENAI_OUTPUT_USD_PER_MILLION,
            }
        },
    )

    def recording_module(ctx: BuildContext) -> ServiceModule:
        return ServiceModule(name="recording", offers=Offers(answer_listeners=[answer_listener]))

    app = ForgeServer(settings, builders=(*TEST_MODULES, recording_module))
    await app.start()
    # The first account of an empty database becomes admin; no test user should be one.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as chan:
        await register(chan, email=ADMIN_EMAIL, display_name="Agents Admin")
    yield app
    await app.stop(grace=0)


@pytest.fixture(scope="package")
async def agents_channel(agents_server: ForgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{agents_server.port}") as chan:
        yield chan


@pytest.fixture(scope="package")
async def agents_envoy(agents_server: ForgeServer) -> AsyncIterator[EnvoyProcess]:
    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=agents_server.port,
        descriptor_path=DESCRIPTOR,
        listen_host="127.0.0.1",
        access_log=False,
    )
    async with EnvoyProcess(config) as proc:
        yield proc


@pytest.fixture
async def agents_http(agents_envoy: EnvoyProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=agents_envoy.base_url) as session:
        yield session


@pytest.fixture
async def agents_admin(agents_channel: grpc.aio.Channel) -> Account:
    """The server's admin (the first account), signed in."""
    return await login(agents_channel, ADMIN_EMAIL)


@pytest.fixture
async def team(agents_channel: grpc.aio.Channel) -> Team:
    return await new_team(agents_channel)
