"""A user's share of open streams holds across server processes (core/holds.py): with
room for one stream, a chat streaming through one server refuses a second one through
another, until the first ends."""

from __future__ import annotations

import secrets

import grpc
import pytest

from server.db.embedded import EmbeddedPostgres
from tests.agents.support import chat_call, new_conversation, new_team, read_events, read_rest
from tests.support.own_server import own_server
from tests.support.rpc import error_info
from tests.support.waiting import eventually

# The echo model answers word by word, one every 20 ms: about 4 s for this message.
LONG_MESSAGE = " ".join(f"word{i}" for i in range(200))


async def test_a_users_streams_are_counted_across_processes(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = await postgres.ensure_database("forge_shares_two_processes")
    settings = {
        "user_max_concurrent_streams": 1,
        "echo_token_delay_ms": 20.0,
        "jwt_secret": secrets.token_hex(32),  # one secret: tokens of one serve the other
    }
    async with (
        own_server(url, tmp_path_factory.mktemp("a"), "shares-admin", **settings) as a,
        own_server(url, tmp_path_factory.mktemp("b"), "shares-other", **settings) as b,
        grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as channel_a,
        grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as channel_b,
    ):
        team = await new_team(channel_a)
        first = await new_conversation(channel_a, team.owner, team.project_id)
        second = await new_conversation(channel_b, team.owner, team.project_id)
        streaming = chat_call(channel_a, team.owner, first.id, LONG_MESSAGE)
        assert (await read_events(streaming, 2))[-1].HasField("delta")

        refused = chat_call(channel_b, team.owner, second.id, "hello")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read_rest(refused)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(caught.value).reason == "STREAM_LIMIT_REACHED"

        # Another user is not held back.
        other = await new_team(channel_b)
        theirs = await new_conversation(channel_b, other.owner, other.project_id)
        done = await read_rest(chat_call(channel_b, other.owner, theirs.id, "hi"))
        assert done[-1].HasField("completed")

        # Once the first chat ends, its place is free on every process.
        assert (await read_rest(streaming))[-1].HasField("completed")

        async def second_streams() -> bool:
            try:
                events = await read_rest(chat_call(channel_b, team.owner, second.id, "again"))
            except grpc.aio.AioRpcError as error:
                if error_info(error).reason == "STREAM_LIMIT_REACHED":
                    return False
                raise
            return events[-1].HasField("completed")

        await eventually(second_streams, timeout=10)
