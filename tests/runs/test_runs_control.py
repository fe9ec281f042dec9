"""Approving, denying, steering and cancelling runs (the latter from another server
process), against the real server, PostgreSQL and Docker."""

from __future__ import annotations

import grpc
import pytest
from forge.agents.v1 import agents_pb2
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc

from tests.agents.support import Team
from tests.runs.conftest import (
    agents,
    get_run,
    start_run,
    wait_for_status,
    watch,
)
from tests.support.process import ServerProcess

GOAL = "Greet.\n\n```python\n# file: hi.py\nprint('hi there')\n```\n"
SLEEPER = "Wait.\n\n```python\n# file: sleeper.py\nimport time\ntime.sleep(600)\n```\n"


async def approve(
    channel: grpc.aio.Channel,
    account: object,
    run_id: str,
    call_id: str,
    approved: bool,
    reason: str = "",
) -> agents_pb2.Run:
    return await agents(channel).ApproveToolCall(
        agents_pb2.ApproveToolCallRequest(
            run_id=run_id, tool_call_id=call_id, approve=approved, reason=reason
        ),
        metadata=account.metadata,  # type: ignore[attr-defined]
        timeout=10,
    )


async def waiting_run(channel: grpc.aio.Channel, crew: Team) -> agents_pb2.Run:
    run = await start_run(
        channel,
        crew.owner,
        crew.project_id,
        GOAL,
        approval_mode=agents_pb2.APPROVAL_MODE_ASK_BEFORE_BASH,
    )
    waiting = await wait_for_status(
        channel, crew.owner, run.id, agents_pb2.RUN_STATUS_WAITING_FOR_APPROVAL
    )
    assert waiting.pending_tool_call.name == "bash"
    return waiting


async def test_an_approved_call_runs_and_the_run_goes_on(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    run = await waiting_run(runs_channel, crew)
    call = run.pending_tool_call
    # The editor's create ran without asking (ask before bash only).
    before = await watch(runs_channel, crew.owner, run.id, until="status", after_seq=0)
    assert before.kinds[0] == "status"

    with pytest.raises(grpc.aio.AioRpcError) as viewer:
        await approve(runs_channel, crew.viewer, run.id, call.id, True)
    assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as stranger:
        await approve(runs_channel, crew.stranger, run.id, call.id, True)
    assert stranger.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await approve(runs_channel, crew.owner, run.id, "not-the-call", True)
    assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    approved = await approve(runs_channel, crew.owner, run.id, call.id, True)
    assert approved.status == agents_pb2.RUN_STATUS_QUEUED
    watched = await watch(runs_channel, crew.owner, run.id)
    assert watched.last.completed.status == agents_pb2.RUN_STATUS_SUCCEEDED
    waiting = [e for e in watched.of("status") if e.status.tool_call_id]
    assert [e.status.status for e in waiting] == [agents_pb2.RUN_STATUS_WAITING_FOR_APPROVAL]
    assert waiting[0].status.tool_call_id == call.id
    approval = watched.of("approval")[0].approval
    assert approval.approved
    assert approval.tool_call_id == call.id
    assert approval.user_id == crew.owner.user_id
    # The approved call then ran: exec output, and a successful result.
    kinds = watched.kinds
    assert kinds.index("approval") < kinds.index("exec")
    results = {e.tool_result.tool_call_id: e.tool_result for e in watched.of("tool_result")}
    assert not results[call.id].is_error
    assert "hi there" in results[call.id].content
    assert watched.seqs == list(range(1, len(watched.events) + 1))

    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await approve(runs_channel, crew.owner, run.id, call.id, True)
    assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_denied_call_is_shown_to_the_model(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    run = await waiting_run(runs_channel, crew)
    call = run.pending_tool_call
    await approve(runs_channel, crew.owner, run.id, call.id, False, "no programs today")
    watched = await watch(runs_channel, crew.owner, run.id)
    results = {e.tool_result.tool_call_id: e.tool_result for e in watched.of("tool_result")}
    assert results[call.id].is_error
    assert "no programs today" in results[call.id].content
    assert not watched.of("exec")
    # The echo script reports the failed step in its final answer: the model saw it.
    completed = watched.last.completed
    assert "no programs today" in completed.result
    assert watched.of("approval")[0].approval.approved is False


async def test_send_run_message_is_recorded_for_the_model(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    run = await waiting_run(runs_channel, crew)
    with pytest.raises(grpc.aio.AioRpcError) as viewer:
        await agents(runs_channel).SendRunMessage(
            agents_pb2.SendRunMessageRequest(run_id=run.id, content="go on"),
            metadata=crew.viewer.metadata,
            timeout=10,
        )
    assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await agents(runs_channel).SendRunMessage(
            agents_pb2.SendRunMessageRequest(run_id=run.id, content=" "),
            metadata=crew.owner.metadata,
            timeout=10,
        )
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await agents(runs_channel).SendRunMessage(
        agents_pb2.SendRunMessageRequest(run_id=run.id, content="please hurry"),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    await approve(runs_channel, crew.owner, run.id, run.pending_tool_call.id, True)
    watched = await watch(runs_channel, crew.owner, run.id)
    steering = watched.of("user_message")
    assert [e.user_message.content for e in steering] == ["please hurry"]
    assert steering[0].user_message.author_user_id == crew.owner.user_id
    # Recorded before the next model turn.
    after = watched.kinds[watched.kinds.index("user_message") + 1 :]
    assert "usage" in after
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await agents(runs_channel).SendRunMessage(
            agents_pb2.SendRunMessageRequest(run_id=run.id, content="too late"),
            metadata=crew.owner.metadata,
            timeout=10,
        )
    assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancel_from_another_process_kills_the_running_tool(
    runs_channel: grpc.aio.Channel, crew: Team, second_server: ServerProcess
) -> None:
    run = await start_run(runs_channel, crew.owner, crew.project_id, SLEEPER)
    seen = await watch(runs_channel, crew.owner, run.id, until="exec")
    assert seen.last.exec.HasField("started")
    running = await get_run(runs_channel, crew.owner, run.id)
    assert running.status == agents_pb2.RUN_STATUS_RUNNING
    sandboxes = sandbox_pb2_grpc.SandboxServiceStub(runs_channel)

    async def processes() -> bytes:
        out = b""
        async for event in sandboxes.Exec(
            sandbox_pb2.ExecRequest(sandbox_id=running.sandbox_id, argv=["ps", "-eo", "args"]),
            metadata=crew.owner.metadata,
            timeout=30,
        ):
            if event.HasField("stdout"):
                out += event.stdout
        return out

    assert b"sleeper.py" in await processes()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{second_server.port}") as other:
        with pytest.raises(grpc.aio.AioRpcError) as viewer:
            await agents(other).CancelRun(
                agents_pb2.CancelRunRequest(run_id=run.id),
                metadata=crew.viewer.metadata,
                timeout=10,
            )
        assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED
        cancelled = await agents(other).CancelRun(
            agents_pb2.CancelRunRequest(run_id=run.id), metadata=crew.owner.metadata, timeout=20
        )
        assert cancelled.status == agents_pb2.RUN_STATUS_CANCELLED
        # The terminal event reaches a watcher on either process.
        far = await watch(other, crew.owner, run.id, after_seq=seen.last.seq)
    assert far.last.completed.status == agents_pb2.RUN_STATUS_CANCELLED
    near = await watch(runs_channel, crew.owner, run.id)
    assert near.events[-len(far.events) :] == far.events
    results = near.of("tool_result")
    assert results[-1].tool_result.is_error
    assert "cancelled" in results[-1].tool_result.content
    assert b"sleeper.py" not in await processes()


async def test_a_retried_start_run_returns_the_first_run(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    first = await start_run(
        runs_channel, crew.owner, crew.project_id, GOAL, request_id="start-once"
    )
    again = await start_run(
        runs_channel, crew.owner, crew.project_id, GOAL, request_id="start-once"
    )
    assert again.id == first.id
    listed = await agents(runs_channel).ListRuns(
        agents_pb2.ListRunsRequest(project_id=crew.project_id),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    assert [run.id for run in listed.runs] == [first.id]
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await start_run(
            runs_channel, crew.owner, crew.project_id, "Another goal", request_id="start-once"
        )
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await wait_for_status(runs_channel, crew.owner, first.id, agents_pb2.RUN_STATUS_SUCCEEDED)
