"""Runs of the offline echo model against the real server, PostgreSQL and Docker: the echo
script end to end, budgets, approvals, steering, cancelling, and StartRun's validation."""

from __future__ import annotations

import json

import grpc
import pytest
from forge.agents.v1 import agents_pb2
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from google.protobuf import duration_pb2

from tests.agents.support import Team
from tests.runs.conftest import agents, get_run, start_run, wait_for_status, watch
from tests.support.accounts import Account

PROGRAM = 'print("hello from the run")\nprint(6 * 7)\n'
BLOCK = f"# file: greet.py\n{PROGRAM}"
GOAL = f"Write a program that greets.\n\n```python\n{BLOCK}```\n"


async def new_task(channel: grpc.aio.Channel, team: Team) -> projects_pb2.Task:
    return await projects_pb2_grpc.ProjectServiceStub(channel).CreateTask(
        projects_pb2.CreateTaskRequest(
            project_id=team.project_id, task=projects_pb2.Task(title="Greet")
        ),
        metadata=team.owner.metadata,
        timeout=10,
    )


async def test_the_echo_script_writes_runs_and_saves_a_program(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    task = await new_task(runs_channel, crew)
    run = await start_run(runs_channel, crew.owner, crew.project_id, GOAL, task_id=task.id)
    assert run.status in (agents_pb2.RUN_STATUS_QUEUED, agents_pb2.RUN_STATUS_RUNNING)
    assert run.approval_mode == agents_pb2.APPROVAL_MODE_AUTO

    # Attached to the task, which moved to in progress.
    projects = projects_pb2_grpc.ProjectServiceStub(runs_channel)
    watched = await watch(runs_channel, crew.owner, run.id)

    assert watched.seqs == list(range(1, len(watched.events) + 1))
    assert watched.kinds[-1] == "completed", watched.events[-3:]
    completed = watched.last.completed
    assert completed.status == agents_pb2.RUN_STATUS_SUCCEEDED
    assert "hello from the run" in completed.result

    names = [name for name, _ in watched.tool_calls()]
    assert names == ["editor", "bash", "save_artifact", "finish"]
    editor_args = json.loads(watched.of("tool_call")[0].tool_call.arguments)
    assert editor_args["command"] == "create"
    assert editor_args["path"] == "greet.py"

    # tool_call(create) → tool_result → tool_call(bash) → exec… → tool_result →
    # tool_call(save_artifact) → artifact → tool_result → … → completed
    order = [k for k in watched.kinds if k in ("tool_call", "tool_result", "exec", "artifact")]
    first_bash = order.index("tool_call", 2)
    assert order[:3] == ["tool_call", "tool_result", "tool_call"]
    execs = [e.exec for e in watched.of("exec")]
    assert execs
    assert order[first_bash + 1] == "exec"
    stdout = b"".join(e.stdout for e in execs if e.HasField("stdout"))
    assert stdout == b"hello from the run\n42\n"
    assert execs[-1].HasField("exit")
    assert execs[-1].exit.exit_code == 0
    assert order.index("artifact") > order.index("exec")
    for result in watched.of("tool_result"):
        assert not result.tool_result.is_error, result
    # Each model turn: a RUNNING status with its step, then its usage.
    steps = [e.status.step for e in watched.of("status") if e.status.step]
    assert steps == [1, 2, 3, 4]
    assert len(watched.of("usage")) == 4

    # The artifact is the file in the sandbox.
    final = await get_run(runs_channel, crew.owner, run.id)
    assert final.status == agents_pb2.RUN_STATUS_SUCCEEDED
    assert final.step_count == 4
    assert final.last_seq == len(watched.events)
    assert final.sandbox_id
    assert final.usage.input_tokens == completed.usage.input_tokens > 0
    sandbox_file = await sandbox_pb2_grpc.SandboxServiceStub(runs_channel).ReadFile(
        sandbox_pb2.ReadFileRequest(sandbox_id=final.sandbox_id, path="greet.py"),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    assert sandbox_file.content == BLOCK.encode()
    artifact = watched.of("artifact")[0].artifact
    assert artifact.filename == "greet.py"
    content = await artifacts_pb2_grpc.ArtifactServiceStub(runs_channel).GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=artifact.id),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    assert content.data == sandbox_file.content

    moved = await projects.GetTask(
        projects_pb2.GetTaskRequest(project_id=crew.project_id, task_id=task.id),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    assert moved.status == projects_pb2.TASK_STATUS_REVIEW

    # A second watcher, and one resuming after the 7th event, see the same events.
    again = await watch(runs_channel, crew.viewer, run.id)
    assert again.events == watched.events
    resumed = await watch(runs_channel, crew.owner, run.id, after_seq=7)
    assert resumed.events == watched.events[7:]


async def test_max_steps_fails_the_run_after_that_many_steps(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    run = await start_run(runs_channel, crew.owner, crew.project_id, GOAL, max_steps=2)
    watched = await watch(runs_channel, crew.owner, run.id)
    assert watched.kinds[-1] == "error"
    error = watched.last.error
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "2 steps" in error.message
    assert [e.status.step for e in watched.of("status") if e.status.step] == [1, 2]
    assert len(watched.of("tool_result")) == 2
    final = await get_run(runs_channel, crew.owner, run.id)
    assert final.status == agents_pb2.RUN_STATUS_FAILED
    assert final.step_count == 2
    assert final.error.message == error.message


async def test_viewers_and_strangers_cannot_start_runs(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await start_run(runs_channel, crew.viewer, crew.project_id, GOAL)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await start_run(runs_channel, crew.stranger, crew.project_id, GOAL)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("fields", "code", "what"),
    [
        ({"agent_id": "nobody"}, grpc.StatusCode.NOT_FOUND, "agent"),
        ({"task_id": "018f0000-0000-7000-8000-000000000000"}, grpc.StatusCode.NOT_FOUND, "task"),
        ({"max_steps": 100_000}, grpc.StatusCode.INVALID_ARGUMENT, "max_steps"),
        ({"max_steps": -1}, grpc.StatusCode.INVALID_ARGUMENT, "max_steps"),
        ({"goal": " "}, grpc.StatusCode.INVALID_ARGUMENT, "goal"),
        ({"model": "nonsense/model"}, grpc.StatusCode.INVALID_ARGUMENT, "model"),
    ],
)
async def test_start_run_refuses_bad_input(
    runs_channel: grpc.aio.Channel,
    crew: Team,
    fields: dict[str, object],
    code: grpc.StatusCode,
    what: str,
) -> None:
    values: dict[str, object] = {"goal": GOAL, **fields}
    goal = str(values.pop("goal"))
    agent_id = str(values.pop("agent_id", "coder"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await start_run(
            runs_channel, crew.owner, crew.project_id, goal, agent_id=agent_id, **values
        )
    assert refused.value.code() == code
    assert what in (refused.value.details() or "").lower()


async def test_a_sandbox_of_another_project_is_not_found(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    sandboxes = sandbox_pb2_grpc.SandboxServiceStub(runs_channel)
    other = await projects_pb2_grpc.ProjectServiceStub(runs_channel).CreateProject(
        projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="Other")),
        metadata=crew.owner.metadata,
        timeout=10,
    )
    sandbox = await sandboxes.CreateSandbox(
        sandbox_pb2.CreateSandboxRequest(
            project_id=other.id, sandbox=sandbox_pb2.Sandbox(runtime="python")
        ),
        metadata=crew.owner.metadata,
        timeout=60,
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await start_run(runs_channel, crew.owner, crew.project_id, GOAL, sandbox_id=sandbox.id)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await sandboxes.DeleteSandbox(
            sandbox_pb2.DeleteSandboxRequest(sandbox_id=sandbox.id),
            metadata=crew.owner.metadata,
            timeout=30,
        )


async def test_runs_per_user_are_limited(runs_channel: grpc.aio.Channel, crew: Team) -> None:
    # Runs that wait for approval stay active without using anything.
    started = []
    for _ in range(3):
        run = await start_run(
            runs_channel,
            crew.owner,
            crew.project_id,
            GOAL,
            approval_mode=agents_pb2.APPROVAL_MODE_ASK_BEFORE_WRITES,
        )
        started.append(run)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await start_run(runs_channel, crew.owner, crew.project_id, GOAL)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    metadata = dict(refused.value.trailing_metadata() or ())
    assert "grpc-status-details-bin" in metadata
    for run in started:
        await wait_for_status(
            runs_channel, crew.owner, run.id, agents_pb2.RUN_STATUS_WAITING_FOR_APPROVAL
        )
        cancelled = await agents(runs_channel).CancelRun(
            agents_pb2.CancelRunRequest(run_id=run.id), metadata=crew.owner.metadata, timeout=10
        )
        assert cancelled.status == agents_pb2.RUN_STATUS_CANCELLED


async def test_a_token_budget_fails_the_run_once_spent(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    run = await start_run(runs_channel, crew.owner, crew.project_id, GOAL, token_budget=1)
    watched = await watch(runs_channel, crew.owner, run.id)
    assert watched.kinds[-1] == "error"
    assert watched.last.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "tokens" in watched.last.error.message
    assert len(watched.of("usage")) == 1


async def test_the_time_limit_stops_a_running_tool(
    runs_channel: grpc.aio.Channel, crew: Team
) -> None:
    sleeper = "Wait.\n\n```python\n# file: nap.py\nimport time\ntime.sleep(600)\n```\n"
    run = await start_run(
        runs_channel,
        crew.owner,
        crew.project_id,
        sleeper,
        time_limit=duration_pb2.Duration(seconds=8),
    )
    assert run.time_limit.seconds == 8
    watched = await watch(runs_channel, crew.owner, run.id)
    assert watched.kinds[-1] == "error"
    assert watched.last.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    result = watched.of("tool_result")[-1].tool_result
    assert result.is_error
    assert "time limit" in result.content
    final = await get_run(runs_channel, crew.owner, run.id)
    assert final.status == agents_pb2.RUN_STATUS_FAILED


async def test_an_admin_outside_the_project_runs_with_admin_rights(
    runs_channel: grpc.aio.Channel, crew: Team, runs_admin: Account
) -> None:
    """Admins act as owners everywhere; a run acts as its creator with the creator's role,
    so its tools work in a project the admin is not a member of."""
    run = await start_run(runs_channel, runs_admin, crew.project_id, GOAL)
    watched = await watch(runs_channel, runs_admin, run.id)
    assert watched.kinds[-1] == "completed", watched.events[-3:]
    assert watched.last.completed.status == agents_pb2.RUN_STATUS_SUCCEEDED
    assert not [e for e in watched.of("tool_result") if e.tool_result.is_error]


async def test_system_stats_count_runs(
    runs_channel: grpc.aio.Channel, crew: Team, runs_admin: Account
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(runs_channel)
    before = await auth.GetSystemStats(
        auth_pb2.GetSystemStatsRequest(), metadata=runs_admin.metadata
    )
    run = await start_run(
        runs_channel,
        crew.owner,
        crew.project_id,
        GOAL,
        approval_mode=agents_pb2.APPROVAL_MODE_ASK_BEFORE_WRITES,
    )
    await wait_for_status(
        runs_channel, crew.owner, run.id, agents_pb2.RUN_STATUS_WAITING_FOR_APPROVAL
    )
    waiting = await auth.GetSystemStats(
        auth_pb2.GetSystemStatsRequest(), metadata=runs_admin.metadata
    )
    assert waiting.run_count == before.run_count + 1
    assert waiting.active_run_count >= 1
    await agents(runs_channel).CancelRun(
        agents_pb2.CancelRunRequest(run_id=run.id), metadata=crew.owner.metadata, timeout=30
    )
    ended = await wait_for_status(runs_channel, crew.owner, run.id, agents_pb2.RUN_STATUS_CANCELLED)
    assert ended.end_time.seconds > 0
