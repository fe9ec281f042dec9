"""Runs use their creator's own provider key, or their project's before it, in place of the
server's (asserted on what the OpenAI-compatible fake received)."""

from __future__ import annotations

import uuid

import grpc
from forge.agents.v1 import agents_pb2

from tests.agents.support import Team
from tests.fakes.script import Script, words
from tests.runs.conftest import (
    OPENAI_MODEL,
    OpenAITurns,
    agents,
    script_turns,
    start_run,
    watch,
)

SERVER_KEY = "sk-openai-forge-test"


async def store_key(channel: grpc.aio.Channel, crew: Team, project_id: str = "") -> str:
    secret = f"sk-run-{uuid.uuid4().hex}"
    await agents(channel).CreateProviderKey(
        agents_pb2.CreateProviderKeyRequest(
            project_id=project_id,
            provider_key=agents_pb2.ProviderKey(provider="openai", api_key=secret),
        ),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    return secret


async def key_of_a_run(channel: grpc.aio.Channel, crew: Team, fake: OpenAITurns) -> str:
    script_turns(fake, [Script(tokens=words(3, "done"))])
    run = await start_run(channel, crew.owner, crew.project_id, "Say done.", model=OPENAI_MODEL)
    watched = await watch(channel, crew.owner, run.id)
    (completed,) = watched.of("completed")
    assert completed.completed.status == agents_pb2.RUN_STATUS_SUCCEEDED, watched.events
    assert len(fake.requests) == 1
    return fake.requests[0].headers["authorization"].removeprefix("Bearer ")


async def test_a_run_uses_its_creators_key_and_its_projects_before_it(
    runs_channel: grpc.aio.Channel, crew: Team, openai_turns: OpenAITurns
) -> None:
    assert await key_of_a_run(runs_channel, crew, openai_turns) == SERVER_KEY
    users = await store_key(runs_channel, crew)
    assert await key_of_a_run(runs_channel, crew, openai_turns) == users
    projects = await store_key(runs_channel, crew, crew.project_id)
    assert await key_of_a_run(runs_channel, crew, openai_turns) == projects
