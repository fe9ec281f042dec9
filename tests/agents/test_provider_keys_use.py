"""Own provider keys on a server that lacks a provider's key (no Anthropic key here): the
provider becomes usable with a user's or a project's key, ListModels lists it with whose key
answers, and deleting the key takes it away again. Then rotation of the key-encryption keys:
a restart with a new first key re-encrypts the stored keys, after which the old one can go.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from forge.agents.v1 import agents_pb2
from sqlalchemy import text

from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from server.db.engine import make_engine
from tests.agents.provider_keys_support import create_key, delete_key, list_keys, own_key
from tests.agents.support import DEADLINE, Team, chat, new_conversation, new_team, rescript, stub
from tests.conftest import make_settings
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.script import Script, words
from tests.support.accounts import register
from tests.support.rpc import error_info
from tests.support.testing_service import TEST_MODULES

MODEL = "anthropic/claude-own"
KEY_A = base64.b64encode(os.urandom(32)).decode()
KEY_B = base64.b64encode(os.urandom(32)).decode()


def key_id(key: str) -> str:
    return hashlib.sha256(base64.b64decode(key)).hexdigest()[:8]


def settings_for(database: str, data_dir: Path, fake: AnthropicFake, *keys: str) -> object:
    return make_settings(
        database,
        data_dir,
        jwt_secret="j" * 64,
        anthropic_base_url=fake.base_url,
        anthropic_models=["claude-own"],
        provider_key_encryption_keys=",".join(keys),
        default_model="echo",
        provider_retry_attempts=1,
        provider_timeout_seconds=5.0,
    )


async def serve(settings: object) -> ForgeServer:
    app = ForgeServer(settings, TEST_MODULES)  # type: ignore[arg-type]
    await app.start()
    return app


@pytest.fixture(scope="module")
async def keyless_server(
    postgres: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_fake: AnthropicFake,
) -> AsyncIterator[ForgeServer]:
    database = await postgres.ensure_database("forge_own_keys")
    app = await serve(settings_for(database, tmp_path_factory.mktemp("own"), anthropic_fake, KEY_A))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as chan:
        await register(chan, display_name="Own Keys Admin")  # the first account: admin
    yield app
    await app.stop(grace=0)


@pytest.fixture
async def channel(keyless_server: ForgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{keyless_server.port}") as chan:
        yield chan


async def models(
    channel: grpc.aio.Channel, team: Team, project_id: str = ""
) -> dict[str, agents_pb2.KeySource.ValueType]:
    listed = await stub(channel).ListModels(
        agents_pb2.ListModelsRequest(project_id=project_id, page_size=100),
        metadata=team.owner.metadata,
        timeout=DEADLINE,
    )
    return {model.id: model.key_source for model in listed.models}


async def test_a_provider_without_a_server_key_answers_with_an_own_key(
    anthropic_fake: AnthropicFake, channel: grpc.aio.Channel
) -> None:
    team = await new_team(channel)
    fake = rescript(anthropic_fake, Script(tokens=words(3)))
    # A well-formed model is accepted whoever will call it; the chat says what is missing.
    conversation = await new_conversation(channel, team.owner, team.project_id, model=MODEL)
    refused = await chat(channel, team.owner, conversation.id)
    assert refused.error is not None
    assert refused.error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused.error).reason == "PROVIDER_NOT_CONFIGURED"
    assert MODEL not in await models(channel, team)
    assert fake.requests == []

    secret = own_key("ant")
    mine = await create_key(channel, team.owner, "anthropic", secret)
    answered = await chat(channel, team.owner, conversation.id)
    assert answered.error is None, answered.error
    assert answered.text == "".join(words(3))
    headers = fake.requests[-1].headers
    assert (headers.get("x-api-key") or headers["authorization"]).removeprefix("Bearer ") == secret
    assert (await models(channel, team))[MODEL] == agents_pb2.KEY_SOURCE_USER
    assert (await models(channel, team))["echo"] == agents_pb2.KEY_SOURCE_SERVER

    # The project's key answers the project's calls, and ListModels with the project says so.
    project_secret = own_key("proj")
    await create_key(channel, team.owner, "anthropic", project_secret, project_id=team.project_id)
    assert (await models(channel, team, team.project_id))[MODEL] == agents_pb2.KEY_SOURCE_PROJECT
    assert (await models(channel, team))[MODEL] == agents_pb2.KEY_SOURCE_USER
    await chat(channel, team.owner, conversation.id)
    headers = fake.requests[-1].headers
    sent = (headers.get("x-api-key") or headers["authorization"]).removeprefix("Bearer ")
    assert sent == project_secret
    # Only the project's members may ask with it.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub(channel).ListModels(
            agents_pb2.ListModelsRequest(project_id=team.project_id),
            metadata=team.stranger.metadata,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    await delete_key(channel, team.owner, mine.id)
    (project_key,) = await list_keys(channel, team.owner, team.project_id)
    await delete_key(channel, team.owner, project_key.id, team.project_id)
    assert MODEL not in await models(channel, team)
    again = await chat(channel, team.owner, conversation.id)
    assert again.error is not None
    assert error_info(again.error).reason == "PROVIDER_NOT_CONFIGURED"


async def test_a_new_first_key_re_encrypts_stored_keys_at_start(
    postgres: EmbeddedPostgres, tmp_path: Path, anthropic_fake: AnthropicFake
) -> None:
    database = await postgres.ensure_database("forge_own_keys_rotation")
    app = await serve(settings_for(database, tmp_path / "a", anthropic_fake, KEY_A))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as chan:
            await register(chan)  # the admin
            team = await new_team(chan)
            secret = own_key("rotated")
            created = await create_key(chan, team.owner, "anthropic", secret)
    finally:
        await app.stop(grace=0)

    async def sealed_with() -> str:
        engine = make_engine(database)
        try:
            async with engine.connect() as conn:
                found = await conn.scalar(
                    text("SELECT encryption_key_id FROM provider_keys WHERE id = :id"),
                    {"id": created.id},
                )
                return str(found)
        finally:
            await engine.dispose()

    assert await sealed_with() == key_id(KEY_A)
    # Step 1 of a rotation: the new key first, the old one still there; a restart re-seals.
    app = await serve(settings_for(database, tmp_path / "b", anthropic_fake, KEY_B, KEY_A))
    await app.stop(grace=0)
    assert await sealed_with() == key_id(KEY_B)
    # Step 2: the old key removed; the stored key still answers.
    app = await serve(settings_for(database, tmp_path / "c", anthropic_fake, KEY_B))
    try:
        fake = rescript(anthropic_fake, Script(tokens=words(2)))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as chan:
            conversation = await new_conversation(chan, team.owner, team.project_id, model=MODEL)
            result = await chat(chan, team.owner, conversation.id)
        assert result.error is None, result.error
        headers = fake.requests[-1].headers
        sent = (headers.get("x-api-key") or headers["authorization"]).removeprefix("Bearer ")
        assert sent == secret
    finally:
        await app.stop(grace=0)
