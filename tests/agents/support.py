"""Helpers for the AgentService tests: teams with a project, chat calls, rescripting the
shared fake providers, SSE parsing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from tests.fakes.script import Script
from tests.fakes.server import FakeProviderServer
from tests.support.accounts import Account, register
from tests.support.rpc import status_of

DEADLINE = 10.0
MessageT = TypeVar("MessageT", bound=Message)


def rescript(fake: FakeProviderServer, script: Script) -> FakeProviderServer:
    """Gives a fake shared by the tests a new script and a clean record."""
    fake.release.set()  # a handler still holding from an earlier test lets go
    fake.script = script
    fake._statuses = list(script.statuses)
    fake.requests.clear()
    fake.tokens_sent = 0
    fake.streams_completed = 0
    fake.disconnects = 0
    fake.disconnected = asyncio.Event()
    fake.holding = asyncio.Event()
    fake.release = asyncio.Event()
    fake.last_token_sent = asyncio.Event()
    return fake


async def within(event: asyncio.Event, what: str, timeout: float = DEADLINE) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {timeout}s") from None


@dataclass
class Team:
    """A project with an owner (chats), a viewer, and a stranger who is not a member."""

    project_id: str
    owner: Account
    viewer: Account
    stranger: Account


async def new_team(channel: grpc.aio.Channel) -> Team:
    """Three fresh accounts; the first creates a project and adds the second as a viewer."""
    owner, viewer, stranger = [await register(channel) for _ in range(3)]
    projects = projects_pb2_grpc.ProjectServiceStub(channel)
    project = await projects.CreateProject(
        projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="Agents test")),
        metadata=owner.metadata,
        timeout=DEADLINE,
    )
    await projects.AddMember(
        projects_pb2.AddMemberRequest(
            project_id=project.id, email=viewer.email, role=projects_pb2.PROJECT_ROLE_VIEWER
        ),
        metadata=owner.metadata,
        timeout=DEADLINE,
    )
    return Team(project.id, owner, viewer, stranger)


def stub(channel: grpc.aio.Channel) -> agents_pb2_grpc.AgentServiceAsyncStub:
    return agents_pb2_grpc.AgentServiceStub(channel)


async def new_conversation(
    channel: grpc.aio.Channel,
    account: Account,
    project_id: str,
    *,
    model: str = "",
    agent_id: str = "",
    title: str = "",
) -> agents_pb2.Conversation:
    conversation = agents_pb2.Conversation(model=model, agent_id=agent_id, title=title)
    return await stub(channel).CreateConversation(
        agents_pb2.CreateConversationRequest(project_id=project_id, conversation=conversation),
        metadata=account.metadata,
        timeout=DEADLINE,
    )


@dataclass
class ChatResult:
    events: list[agents_pb2.ChatEvent]
    error: grpc.aio.AioRpcError | None = None

    @property
    def kinds(self) -> list[str]:
        return [str(event.WhichOneof("event")) for event in self.events]

    @property
    def shape(self) -> list[str]:
        """`kinds` with each run of deltas as one "delta" (deltas that arrive while the
        previous event is still being sent go out as one: how many there are depends on
        timing, their text does not)."""
        return event_shape(self.events)

    @property
    def deltas(self) -> list[str]:
        return [event.delta.text for event in self.events if event.HasField("delta")]

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    @property
    def started(self) -> agents_pb2.ChatStarted:
        # First, or right after the summary of a compacted history.
        at = 1 if self.kinds[:1] == ["summary"] else 0
        assert self.events[at].HasField("started"), self.kinds[:3]
        return self.events[at].started


def chat_call(
    channel: grpc.aio.Channel,
    account: Account,
    conversation_id: str,
    content: str,
    *,
    model: str = "",
    timeout: float = DEADLINE,
) -> grpc.aio.UnaryStreamCall[agents_pb2.ChatRequest, agents_pb2.ChatEvent]:
    return stub(channel).Chat(
        agents_pb2.ChatRequest(conversation_id=conversation_id, content=content, model=model),
        metadata=account.metadata,
        timeout=timeout,
    )


async def read_rest(
    call: grpc.aio.UnaryStreamCall[agents_pb2.ChatRequest, agents_pb2.ChatEvent],
) -> list[agents_pb2.ChatEvent]:
    """The remaining events of a call read with `read()` (the two styles cannot be mixed)."""
    events = []
    while (event := await call.read()) is not grpc.aio.EOF:
        assert isinstance(event, agents_pb2.ChatEvent)
        events.append(event)
    return events


def event_shape(events: Sequence[agents_pb2.ChatEvent]) -> list[str]:
    """The events' kinds, each run of deltas as one "delta" (see `ChatResult.shape`)."""
    shape: list[str] = []
    for event in events:
        kind = str(event.WhichOneof("event"))
        if kind != "delta" or shape[-1:] != ["delta"]:
            shape.append(kind)
    return shape


def delta_text(events: Sequence[agents_pb2.ChatEvent]) -> str:
    return "".join(event.delta.text for event in events if event.HasField("delta"))


async def read_text(
    call: grpc.aio.UnaryStreamCall[agents_pb2.ChatRequest, agents_pb2.ChatEvent],
    text: str,
    *,
    of: str | None = None,
) -> list[agents_pb2.ChatEvent]:
    """Events read (with `read()`) until their deltas spell `text`; fails if they go past
    it or the stream ends first. With `of` (the whole answer), reading stops at `text` or
    past it, as the deltas happen to fall (see `delta_text`)."""
    whole = text if of is None else of
    events: list[agents_pb2.ChatEvent] = []
    seen = ""
    while not seen.startswith(text):
        event = await call.read()
        assert isinstance(event, agents_pb2.ChatEvent), (event, seen)
        events.append(event)
        seen += event.delta.text
        assert whole.startswith(seen), (seen, whole)
    return events


async def read_events(
    call: grpc.aio.UnaryStreamCall[agents_pb2.ChatRequest, agents_pb2.ChatEvent], count: int
) -> list[agents_pb2.ChatEvent]:
    events = []
    for _ in range(count):
        event = await call.read()
        assert isinstance(event, agents_pb2.ChatEvent), event
        events.append(event)
    return events


async def chat(
    channel: grpc.aio.Channel,
    account: Account,
    conversation_id: str,
    content: str = "hello there",
    *,
    model: str = "",
) -> ChatResult:
    """Every event of a chat, and the error the call ended with (if any)."""
    result = ChatResult(events=[])
    call = chat_call(channel, account, conversation_id, content, model=model)
    try:
        async for event in call:
            result.events.append(event)
    except grpc.aio.AioRpcError as error:
        result.error = error
    return result


async def messages(
    channel: grpc.aio.Channel, account: Account, conversation_id: str
) -> list[agents_pb2.Message]:
    response = await stub(channel).ListMessages(
        agents_pb2.ListMessagesRequest(conversation_id=conversation_id),
        metadata=account.metadata,
        timeout=DEADLINE,
    )
    return list(response.messages)


def _detail(status: status_pb2.Status, into: MessageT) -> MessageT | None:
    for packed in status.details:
        if packed.Is(into.DESCRIPTOR):
            packed.Unpack(into)
            return into
    return None


def retry_info(error: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo | None:
    return _detail(status_of(error), error_details_pb2.RetryInfo())


def quota_failure(error: grpc.aio.AioRpcError) -> error_details_pb2.QuotaFailure | None:
    return _detail(status_of(error), error_details_pb2.QuotaFailure())


def error_reason(status: status_pb2.Status) -> str:
    info = _detail(status, error_details_pb2.ErrorInfo())
    return str(info.reason) if info is not None else ""


def sse_events(frames: Sequence[bytes]) -> list[dict[str, object]]:
    return [json.loads(frame.removeprefix(b"data: ")) for frame in frames]
