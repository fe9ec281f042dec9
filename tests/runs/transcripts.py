"""Reading a run's transcript (the messages of its conversation) and what it should be,
derived from the run's events as watchers saw them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from forge.agents.v1 import agents_pb2

from tests.runs.conftest import Watched, agents
from tests.support.accounts import Account

ROLE_NAMES = {
    agents_pb2.MESSAGE_ROLE_USER: "user",
    agents_pb2.MESSAGE_ROLE_ASSISTANT: "assistant",
    agents_pb2.MESSAGE_ROLE_TOOL: "tool",
}


@dataclass(frozen=True)
class Said:
    """What a transcript message says: its role, text, tool call ids (assistant), the call
    it answers (tool) and its author (user)."""

    role: str
    content: str
    calls: tuple[str, ...] = ()
    tool_call_id: str = ""
    author: str = ""


def said(message: agents_pb2.Message) -> Said:
    return Said(
        ROLE_NAMES.get(message.role, str(message.role)),
        message.content,
        tuple(call.id for call in message.tool_calls),
        message.tool_call_id,
        message.author_user_id,
    )


def expected(goal: str, author: str, events: Sequence[agents_pb2.RunEvent]) -> list[Said]:
    """The goal, then one assistant message per completed model turn (a turn restarted after
    a crash counts once), one tool message per tool result and one user message per
    steering message, in the order of the events."""
    transcript = [Said("user", goal, author=author)]
    text, calls = "", list[str]()
    for event in events:
        kind = event.WhichOneof("event")
        if kind == "status" and event.status.step:
            text, calls = "", []
        elif kind == "delta":
            text += event.delta.text
        elif kind == "tool_call":
            calls.append(event.tool_call.id)
        elif kind == "usage":
            transcript.append(Said("assistant", text, tuple(calls)))
            text, calls = "", []
        elif kind == "tool_result":
            result = event.tool_result
            transcript.append(Said("tool", result.content, tool_call_id=result.tool_call_id))
        elif kind == "user_message":
            steer = event.user_message
            transcript.append(Said("user", steer.content, author=steer.author_user_id))
    return transcript


async def transcript_messages(
    channel: grpc.aio.Channel, account: Account, conversation_id: str
) -> list[agents_pb2.Message]:
    """Every message of the conversation, oldest first."""
    stub = agents(channel)
    found: list[agents_pb2.Message] = []
    token = ""
    while True:
        page = await stub.ListMessages(
            agents_pb2.ListMessagesRequest(
                conversation_id=conversation_id, page_size=100, page_token=token
            ),
            metadata=account.metadata,
            timeout=10,
        )
        found.extend(page.messages)
        token = page.next_page_token
        if not token:
            return found


def check_transcript(
    messages: Sequence[agents_pb2.Message], goal: str, author: str, watched: Watched
) -> None:
    """The run's messages are exactly the ones its events call for, each complete."""
    assert [said(message) for message in messages] == expected(goal, author, watched.events)
    for message in messages:
        assert message.status == agents_pb2.MESSAGE_STATUS_COMPLETE
