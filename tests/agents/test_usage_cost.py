"""Usage cost: tokens x the model's configured prices, recorded when they are charged and
reported by GetUsage (gRPC and REST)."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2

from tests.agents.conftest import (
    OPENAI_INPUT_USD_PER_MILLION,
    OPENAI_MODEL,
    OPENAI_OUTPUT_USD_PER_MILLION,
)
from tests.agents.support import DEADLINE, Team, chat, new_conversation, rescript, stub
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Script, words

INPUT_TOKENS = 300
OUTPUT_TOKENS = 120


def expected_cost(answers: int) -> float:
    return answers * (
        INPUT_TOKENS * OPENAI_INPUT_USD_PER_MILLION / 1e6
        + OUTPUT_TOKENS * OPENAI_OUTPUT_USD_PER_MILLION / 1e6
    )


async def test_usage_cost_is_tokens_times_the_configured_prices(
    openai_fake: OpenAIFake,
    agents_channel: grpc.aio.Channel,
    agents_http: aiohttp.ClientSession,
    team: Team,
) -> None:
    rescript(
        openai_fake,
        Script(tokens=words(3), input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS),
    )
    conversation = await new_conversation(
        agents_channel, team.owner, team.project_id, model=OPENAI_MODEL
    )
    for _ in range(2):
        result = await chat(agents_channel, team.owner, conversation.id)
        assert result.error is None, result.error
    echo = await new_conversation(agents_channel, team.owner, team.project_id, model="echo")
    assert (await chat(agents_channel, team.owner, echo.id)).error is None

    usage = await stub(agents_channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=team.owner.metadata, timeout=DEADLINE
    )
    records = {record.model: record for record in usage.records}
    priced = records[OPENAI_MODEL]
    assert (priced.input_tokens, priced.output_tokens) == (2 * INPUT_TOKENS, 2 * OUTPUT_TOKENS)
    assert priced.cost_usd == pytest.approx(expected_cost(2), rel=1e-9)
    assert records["echo"].input_tokens > 0
    assert records["echo"].cost_usd == 0  # the offline model is free
    assert usage.cost_usd == pytest.approx(expected_cost(2), rel=1e-9)

    async with agents_http.get("/v1/users/me/usage", headers=dict(team.owner.metadata)) as got:
        assert got.status == 200
        body = await got.json()
    assert body["costUsd"] == pytest.approx(expected_cost(2), rel=1e-9)
    rest_records = {record["model"]: record for record in body["records"]}
    assert rest_records[OPENAI_MODEL]["costUsd"] == pytest.approx(expected_cost(2), rel=1e-9)

    # Another user's usage is their own: nothing of this is theirs.
    others = await stub(agents_channel).GetUsage(
        agents_pb2.GetUsageRequest(), metadata=team.viewer.metadata, timeout=DEADLINE
    )
    assert others.cost_usd == 0
