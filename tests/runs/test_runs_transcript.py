"""A run's transcript is recorded in a conversation (a new one, or the one StartRun names):
the goal, each model turn with its tool calls, each tool result and each steering message,
readable with ListMessages and usable by Chat afterwards."""

from __future__ import annotations

import json

import grpc
import pytest
from forge.agents.v1 import agents_pb2
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

from tests.agents.support import Team, chat, new_conversation
from tests.runs.conftest import agents, get_run, start_run, wait_for_status, watch
from tests.runs.test_runs_control import approve
from tests.runs.transcripts import check_transcript, said, transcript_messages

PROGRAM = 'print("hello from the run")\nprint(6 * 7)\n'
GOAL = f"Write a program that greets.\n\n```python\n# file: greet.py\n{PROGRAM}```\n"


async def conversation(
    channel: grpc.aio.Channel, team: Team, conversation_id: str
) -> agents_pb2.Conversation:
    return await agents(channel).GetConversation(
        agents_pb2.GetConversationRequest(conversation_id=conversation_id),
        metadata=team.viewer.metadata,
        timeout=10,
    )


async def editor_and_bash_agent(channel: grpc.aio.Channel, team: Team) -> agents_pb2.Agent:
    """An agent without `finish` or `save_artifact`: the echo script's last turn is then a
    plain answer."""
    return await agents(channel).CreateAgent(
        agents_pb2.CreateAgentRequest(
            project_id=team.project_id,
            agent=agents_pb2.Agent(name="Runner", model="echo", tools=["editor", "bash"]),
        ),
        metadata=team.owner.metadata,
        timeout=10,
    )


async def test_a_run_records_its_transcript_in_a_new_conversation(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    started = await start_run(runs_channel, crew.owner, crew.project_id, GOAL)
    assert started.conversation_id
    watched = await watch(runs_channel, crew.owner, started.id)
    assert watched.last.completed.status == agents_pb2.RUN_STATUS_SUCCEEDED
    run = await get_run(runs_channel, crew.owner, started.id)
    assert run.conversation_id == started.conversation_id

    messages = await transcript_messages(runs_channel, crew.viewer, run.conversation_id)
    check_transcript(messages, GOAL, crew.owner.user_id, watched)
    roles = [said(message).role for message in messages]
    assert roles == ["user"] + ["assistant", "tool"] * 4
    goal, first = messages[0], messages[1]
    assert goal.content == GOAL
    assert goal.author_user_id == crew.owner.user_id
    # goal → assistant(editor create) → tool → assistant(bash) → tool → …
    assert [m.tool_calls[0].name for m in messages[1::2]] == [
        "editor",
        "bash",
        "save_artifact",
        "finish",
    ]
    assert json.loads(first.tool_calls[0].arguments)["path"] == "greet.py"
    calls = {e.tool_call.id: e.tool_call for e in watched.of("tool_call")}
    for message in messages[1::2]:
        assert message.model == run.model
        assert message.finish_reason == agents_pb2.FINISH_REASON_TOOL_USE
        assert message.usage.input_tokens > 0
        assert message.usage.output_tokens > 0
        call = message.tool_calls[0]
        assert (call.name, call.arguments) == (calls[call.id].name, calls[call.id].arguments)
    for asked, answered in zip(messages[1::2], messages[2::2], strict=True):
        assert answered.tool_call_id == asked.tool_calls[0].id
    assert "hello from the run\n42" in messages[4].content
    usage = [(e.usage.input_tokens, e.usage.output_tokens) for e in watched.of("usage")]
    assert [(m.usage.input_tokens, m.usage.output_tokens) for m in messages[1::2]] == usage

    shown = await conversation(runs_channel, crew, run.conversation_id)
    assert shown.title == "Write a program that greets."
    assert shown.agent_id == "coder"
    assert shown.model == run.model
    assert shown.creator_user_id == crew.owner.user_id
    assert shown.message_count == len(messages)
    assert shown.last_message_time.seconds > 0
    listed = await agents(runs_channel).ListConversations(
        agents_pb2.ListConversationsRequest(project_id=crew.project_id),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    assert [c.id for c in listed.conversations] == [run.conversation_id]

    # Chat goes on in the run's conversation (its history: the user and assistant texts).
    answer = await chat(runs_channel, crew.owner, run.conversation_id, "thanks, what next?")
    assert answer.error is None, answer.error
    assert answer.kinds[-1] == "completed"
    after = await conversation(runs_channel, crew, run.conversation_id)
    assert after.message_count == len(messages) + 2
    more = await transcript_messages(runs_channel, crew.owner, run.conversation_id)
    assert more[: len(messages)] == messages
    assert more[-1].status == agents_pb2.MESSAGE_STATUS_COMPLETE
    assert more[-1].content == answer.text


async def test_a_run_appends_to_the_conversation_it_is_given(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    """After an earlier chat, with a steering message, and a last turn that answers in
    plain text (the agent has no `finish`)."""
    agent = await editor_and_bash_agent(runs_channel, crew)
    talk = await new_conversation(runs_channel, crew.owner, crew.project_id, title="Talk")
    earlier = await chat(runs_channel, crew.owner, talk.id, "hello there")
    assert earlier.error is None
    before = await transcript_messages(runs_channel, crew.owner, talk.id)
    assert len(before) == 2

    run = await start_run(
        runs_channel,
        crew.owner,
        crew.project_id,
        GOAL,
        agent_id=agent.id,
        conversation_id=talk.id,
        approval_mode=agents_pb2.APPROVAL_MODE_ASK_BEFORE_BASH,
    )
    assert run.conversation_id == talk.id
    waiting = await wait_for_status(
        runs_channel, crew.owner, run.id, agents_pb2.RUN_STATUS_WAITING_FOR_APPROVAL
    )
    await agents(runs_channel).SendRunMessage(
        agents_pb2.SendRunMessageRequest(run_id=run.id, content="keep it short"),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    await approve(runs_channel, crew.owner, run.id, waiting.pending_tool_call.id, True)
    watched = await watch(runs_channel, crew.owner, run.id)
    assert watched.last.completed.status == agents_pb2.RUN_STATUS_SUCCEEDED

    messages = await transcript_messages(runs_channel, crew.owner, talk.id)
    assert messages[:2] == before
    added = messages[2:]
    check_transcript(added, GOAL, crew.owner.user_id, watched)
    shape = [(s.role, len(s.calls)) for s in map(said, added)]
    assert shape == [
        ("user", 0),
        ("assistant", 1),
        ("tool", 0),
        ("assistant", 1),
        ("tool", 0),
        ("user", 0),
        ("assistant", 0),
    ]
    steer, final = added[5], added[6]
    assert steer.content == "keep it short"
    assert steer.author_user_id == crew.owner.user_id
    assert final.finish_reason == agents_pb2.FINISH_REASON_STOP
    assert final.content == watched.last.completed.result
    assert final.content
    shown = await conversation(runs_channel, crew, talk.id)
    assert shown.title == "Talk"
    assert shown.message_count == len(messages)

    answer = await chat(runs_channel, crew.owner, talk.id, "and now?")
    assert answer.error is None, answer.error
    assert answer.kinds[-1] == "completed"


def reason_and_fields(error: grpc.aio.AioRpcError) -> tuple[str, list[str]]:
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert isinstance(details, bytes)
    status = status_pb2.Status.FromString(details)
    reason, fields = "", list[str]()
    for packed in status.details:
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if packed.Unpack(info):
            reason = info.reason
        elif packed.Unpack(bad):
            fields.extend(violation.field for violation in bad.field_violations)
    return reason, fields


async def test_a_conversation_of_another_project_is_not_found(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    other = await projects_pb2_grpc.ProjectServiceStub(runs_channel).CreateProject(
        projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="Elsewhere")),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    elsewhere = await new_conversation(runs_channel, crew.owner, other.id)
    missing = "018f0000-0000-7000-8000-000000000000"
    for conversation_id in (elsewhere.id, missing):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await start_run(
                runs_channel, crew.owner, crew.project_id, GOAL, conversation_id=conversation_id
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason_and_fields(refused.value)[0] == "CONVERSATION_NOT_FOUND"

    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await start_run(
            runs_channel, crew.owner, crew.project_id, GOAL, conversation_id="not-an-id"
        )
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "conversation_id" in reason_and_fields(malformed.value)[1]
    # Nothing was started, and no conversation was made.
    runs = await agents(runs_channel).ListRuns(
        agents_pb2.ListRunsRequest(project_id=crew.project_id),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    assert not runs.runs
