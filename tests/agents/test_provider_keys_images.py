"""GenerateImage draws with the caller's own Gemini key (or the project's) in preference to
the server's, and prices the image as the catalog says."""

from __future__ import annotations

import grpc
import pytest
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc

from server.llm.catalog import BUILT_IN
from tests.agents.provider_keys_support import create_key, delete_key, list_keys, own_key
from tests.agents.support import DEADLINE, Team
from tests.fakes.gemini_fake import IMAGE_PNG, GeminiFake
from tests.support.accounts import Account

IMAGE_MODEL = "gemini/gemini-2.5-flash-image"
SERVER_GEMINI_KEY = "gm-forge-test"


async def _draw(channel: grpc.aio.Channel, account: Account, project_id: str) -> bytes:
    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    image = await artifacts.GenerateImage(
        artifacts_pb2.GenerateImageRequest(
            project_id=project_id, prompt="A lighthouse", size="512x512", model=IMAGE_MODEL
        ),
        metadata=account.metadata,
        timeout=DEADLINE,
    )
    content = await artifacts.GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=image.id),
        metadata=account.metadata,
        timeout=DEADLINE,
    )
    data: bytes = content.data
    return data


def _key_of_last_image_call(fake: GeminiFake) -> str:
    calls = [r for r in fake.requests if r.path.endswith(":generateContent")]
    assert calls, "the fake drew nothing"
    return calls[-1].headers["x-goog-api-key"]


async def test_an_own_gemini_key_draws_the_image(
    agents_channel: grpc.aio.Channel, team: Team, gemini_fake: GeminiFake
) -> None:
    assert await _draw(agents_channel, team.owner, team.project_id) == IMAGE_PNG
    assert _key_of_last_image_call(gemini_fake) == SERVER_GEMINI_KEY

    mine = own_key("gemini")
    created = await create_key(agents_channel, team.owner, "gemini", mine)
    await _draw(agents_channel, team.owner, team.project_id)
    assert _key_of_last_image_call(gemini_fake) == mine

    # A project's key comes before the user's own.
    projects = own_key("project")
    await create_key(agents_channel, team.owner, "gemini", projects, project_id=team.project_id)
    await _draw(agents_channel, team.owner, team.project_id)
    assert _key_of_last_image_call(gemini_fake) == projects

    # Without the project's key, the user's own again; without either, the server's.
    [project_key] = await list_keys(agents_channel, team.owner, team.project_id)
    await delete_key(agents_channel, team.owner, project_key.id, team.project_id)
    await _draw(agents_channel, team.owner, team.project_id)
    assert _key_of_last_image_call(gemini_fake) == mine
    await delete_key(agents_channel, team.owner, created.id)
    await _draw(agents_channel, team.owner, team.project_id)
    assert _key_of_last_image_call(gemini_fake) == SERVER_GEMINI_KEY

    # Each image is charged at the catalog's price per image.
    usage = await agents_pb2_grpc.AgentServiceStub(agents_channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=team.owner.metadata, timeout=DEADLINE
    )
    [record] = [r for r in usage.records if r.model == IMAGE_MODEL]
    assert record.image_count == 5
    price = BUILT_IN[IMAGE_MODEL].usd_per_image
    assert price
    assert record.cost_usd == pytest.approx(5 * price)
