"""ListModels: catalog fields, key source, and discovery of the OpenAI-compatible endpoints'
models (`refresh`), stored so every server lists them, at most once per interval."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import grpc
import pytest
from forge.agents.v1 import agents_pb2

from tests.agents.conftest import (
    OLLAMA_MODEL,
    OPENAI_API_KEY,
    OPENAI_INPUT_USD_PER_MILLION,
    OPENAI_MODEL,
    OPENAI_OUTPUT_USD_PER_MILLION,
)
from tests.agents.support import DEADLINE, Team, stub
from tests.fakes.openai_fake import OpenAIFake


async def list_models(
    channel: grpc.aio.Channel, team: Team, *, refresh: bool = False, provider: str = ""
) -> dict[str, agents_pb2.Model]:
    response = await stub(channel).ListModels(
        agents_pb2.ListModelsRequest(refresh=refresh, provider=provider, page_size=1000),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    return {model.id: model for model in response.models}


async def forget_discoveries(database_url: str) -> None:
    """As if no server had asked any provider yet (and the interval had passed)."""
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await connection.execute("DELETE FROM discovered_models")
        await connection.execute("UPDATE model_providers SET discover_time = NULL")
    finally:
        await connection.close()


@pytest.fixture
async def fresh_discovery(
    agents_database: str, openai_fake: OpenAIFake, ollama_fake: OpenAIFake
) -> AsyncIterator[None]:
    await forget_discoveries(agents_database)
    yield
    # Other tests list the configured models only.
    await forget_discoveries(agents_database)
    openai_fake.script_models(None)
    ollama_fake.script_models(None)


async def test_models_carry_catalog_fields_and_whose_key_answers(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    listed = await list_models(agents_channel, team)
    priced = listed[OPENAI_MODEL]
    assert priced.input_usd_per_million_tokens == OPENAI_INPUT_USD_PER_MILLION
    assert priced.output_usd_per_million_tokens == OPENAI_OUTPUT_USD_PER_MILLION
    assert priced.key_source == agents_pb2.KEY_SOURCE_SERVER
    assert not priced.discovered
    sonnet = listed["anthropic/claude-sonnet-5-5"]
    assert (sonnet.display_name, sonnet.context_window_tokens) == ("Claude Sonnet 5.5", 1_000_000)
    assert sonnet.supports_image_input
    assert sonnet.input_usd_per_million_tokens > 0
    # A local (keyless) endpoint's model and echo cost nothing.
    assert listed[OLLAMA_MODEL].input_usd_per_million_tokens == 0
    assert listed["echo"].output_usd_per_million_tokens == 0
    assert {model.key_source for model in listed.values()} == {agents_pb2.KEY_SOURCE_SERVER}


async def test_refresh_discovers_endpoint_models_once_per_interval(
    fresh_discovery: None,
    openai_fake: OpenAIFake,
    ollama_fake: OpenAIFake,
    agents_channel: grpc.aio.Channel,
    team: Team,
) -> None:
    openai_fake.script_models(["gpt-test", "gpt-4.1", "ft:gpt-4o-mini:acme"])
    ollama_fake.script_models(["llama3.2", "qwen3:8b"])
    before = await list_models(agents_channel, team)
    assert "openai/gpt-4.1" not in before

    listed = await list_models(agents_channel, team, refresh=True)
    assert openai_fake.models_keys == [OPENAI_API_KEY]  # the server's key, once
    assert len(ollama_fake.models_keys) == 1
    found = listed["openai/gpt-4.1"]
    assert found.discovered
    assert found.key_source == agents_pb2.KEY_SOURCE_SERVER
    # Described by the built-in catalog, matched by name.
    assert (found.display_name, found.context_window_tokens) == ("GPT-4.1", 1_047_576)
    assert found.input_usd_per_million_tokens == 2.0
    assert listed["openai/ft:gpt-4o-mini:acme"].discovered
    assert listed["ollama/qwen3:8b"].discovered
    assert listed["ollama/qwen3:8b"].input_usd_per_million_tokens == 0
    # A configured model stays configured (listed once, not as discovered).
    assert not listed[OPENAI_MODEL].discovered
    assert not listed[OLLAMA_MODEL].discovered
    assert [model_id for model_id in listed if model_id == OPENAI_MODEL] == [OPENAI_MODEL]

    # Within the interval nobody asks again, and the stored models are listed without asking.
    openai_fake.script_models(["gpt-test"])
    again = await list_models(agents_channel, team, refresh=True)
    assert openai_fake.models_keys == []
    assert "openai/gpt-4.1" in again
    plain = await list_models(agents_channel, team, provider="ollama")
    assert set(plain) == {OLLAMA_MODEL, "ollama/qwen3:8b"}


async def test_a_provider_that_fails_to_answer_is_skipped(
    fresh_discovery: None,
    openai_fake: OpenAIFake,
    ollama_fake: OpenAIFake,
    agents_http: aiohttp.ClientSession,
    team: Team,
) -> None:
    openai_fake.script_models(["gpt-4.1"], status=500)
    ollama_fake.script_models(["llama3.2", "phi4"])
    async with agents_http.get(
        "/v1/models", params={"refresh": "true"}, headers=dict(team.owner.metadata)
    ) as response:
        assert response.status == 200
        body = await response.json()
    models = {model["id"]: model for model in body["models"]}
    assert len(openai_fake.models_keys) == 1  # asked, and it failed
    assert "openai/gpt-4.1" not in models
    assert OPENAI_MODEL in models  # the configured models are still listed
    assert models["ollama/phi4"]["discovered"] is True
    assert models[OPENAI_MODEL]["keySource"] == "KEY_SOURCE_SERVER"
