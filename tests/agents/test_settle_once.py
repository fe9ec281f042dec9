"""An answer is settled and charged once: a late settle (a server that lost the database
while another server's sweeper settled its answer as interrupted) changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from forge.agents.v1 import agents_pb2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.charges import UsageCharge, settle_answer
from server.db.engine import make_engine, make_session_factory
from tests.agents.conftest import ANTHROPIC_MODEL
from tests.agents.support import Team, chat, messages, new_conversation, rescript, stub
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.script import Script, words


@pytest.fixture
async def sessions(agents_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(agents_database)
    yield make_session_factory(engine)
    await engine.dispose()


async def test_a_settled_answer_is_not_settled_or_charged_again(
    anthropic_fake: AnthropicFake,
    agents_channel: grpc.aio.Channel,
    team: Team,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    rescript(anthropic_fake, Script(tokens=words(4)))
    conversation = await new_conversation(
        agents_channel, team.owner, team.project_id, model=ANTHROPIC_MODEL
    )
    answered = await chat(agents_channel, team.owner, conversation.id)
    assert answered.error is None
    usage = agents_pb2.GetUsageRequest()
    before = await stub(agents_channel).GetUsage(usage, metadata=team.owner.metadata)
    settled = (await messages(agents_channel, team.owner, conversation.id))[-1]

    await settle_answer(
        sessions,
        uuid.UUID(answered.started.assistant_message_id),
        content="a late, different ending",
        status="failed",
        finish_reason=None,
        input_tokens=1000,
        output_tokens=1000,
        error=None,
        charge=UsageCharge(
            uuid.UUID(team.owner.user_id), datetime.now(UTC).date(), ANTHROPIC_MODEL, 1000, 1000
        ),
    )

    assert (await messages(agents_channel, team.owner, conversation.id))[-1] == settled
    after = await stub(agents_channel).GetUsage(usage, metadata=team.owner.metadata)
    assert after == before
