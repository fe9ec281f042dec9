"""Requests found by the fuzzer (tests/fuzz) that did not get the answer they deserve."""

from __future__ import annotations

import grpc
import pytest
from forge.agents.v1 import agents_pb2

from tests.agents.support import Team, stub
from tests.support.accounts import register
from tests.support.rpc import field_violations


async def test_usage_up_to_the_first_day_there_is(agents_channel: grpc.aio.Channel) -> None:
    """It was INTERNAL: the default start, 30 days earlier, is before year 1."""
    account = await register(agents_channel)
    usage = await stub(agents_channel).GetUsage(
        agents_pb2.GetUsageRequest(end_day="0001-01-01"), metadata=account.metadata
    )
    assert (usage.start_day, usage.end_day) == ("0001-01-01", "0001-01-01")
    assert list(usage.records) == []


async def test_a_huge_unknown_tool_name_is_invalid_argument(
    agents_channel: grpc.aio.Channel, team: Team
) -> None:
    """It was a transport error: the violation quoted the 64 KiB name, and the status (sent
    in headers) went over the client's 16 KiB metadata limit."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub(agents_channel).CreateAgent(
            agents_pb2.CreateAgentRequest(
                project_id=team.project_id,
                agent=agents_pb2.Agent(name="Huge", tools=["a" * 65_537]),
            ),
            metadata=team.owner.metadata,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "agent.tools" in field_violations(caught.value)
