"""The run tools against the real ports of a running server: Docker sandboxes, artifacts
and the kanban board, acting as the run's user."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import pytest
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.projects.v1 import projects_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.agents.runs.events import ArtifactSaved, ExecReported, RunEvent
from server.agents.runs.tools import ToolContext, ToolOutcome, ToolRegistry
from server.app import ForgeServer
from server.config import Settings
from server.core.context import Caller
from server.core.hooks import Hooks
from server.core.ports import ExecBegan, ExecChunk, ExecEnded
from server.llm import ChatMessage, ChatRequest, ToolResult
from server.llm.echo_answer import compose
from tests.projects.support import add_member, create_project, create_task, stub
from tests.support.accounts import Account, register
from tests.support.waiting import eventually

SETTINGS = Settings(run_bash_timeout_seconds=30, run_tool_output_chars=400)
REGISTRY = ToolRegistry(SETTINGS)


def _ports(app: ForgeServer) -> Hooks:
    hooks = Hooks()
    for module in app.modules:
        offers = module.offers
        for port, impl in (
            (hooks.sandbox, offers.sandbox),
            (hooks.artifacts, offers.artifacts),
            (hooks.task_board, offers.task_board),
        ):
            if impl is not None:
                port.provide(impl)  # type: ignore[arg-type]
    return hooks


@dataclass
class World:
    app: ForgeServer
    channel: grpc.aio.Channel
    owner: Account
    viewer: Account
    project_id: str
    task_id: str
    ports: Hooks
    events: list[RunEvent] = field(default_factory=list)
    emitted: asyncio.Event = field(default_factory=asyncio.Event)
    _sandbox: uuid.UUID | None = None

    def context(self, account: Account | None = None, task: bool = True) -> ToolContext:
        caller = Caller(user_id=uuid.UUID((account or self.owner).user_id))

        async def sandbox() -> uuid.UUID:
            if self._sandbox is None:
                self._sandbox = await self.ports.sandbox.get().ensure_sandbox(
                    caller, uuid.UUID(self.project_id), None
                )
            return self._sandbox

        async def emit(event: RunEvent) -> None:
            self.events.append(event)
            self.emitted.set()

        return ToolContext(
            caller=caller,
            project_id=uuid.UUID(self.project_id),
            run_id=uuid.uuid4(),
            task_id=uuid.UUID(self.task_id) if task else None,
            sandbox=sandbox,
            ports=self.ports,
            emit=emit,
            settings=SETTINGS,
        )

    async def call(
        self, name: str, ctx: ToolContext | None = None, **arguments: Any
    ) -> ToolOutcome:
        parsed = REGISTRY.parse(name, json.dumps(arguments))
        return await REGISTRY.run(ctx or self.context(), name, parsed)


@pytest.fixture
async def world(forge: ForgeServer, channel: grpc.aio.Channel) -> AsyncIterator[World]:
    health = health_pb2_grpc.HealthStub(channel)

    async def sandbox_serving() -> bool:
        answer = await health.Check(
            health_pb2.HealthCheckRequest(service="forge.sandbox.v1.SandboxService")
        )
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    await eventually(sandbox_serving, timeout=60)
    owner, viewer = await register(channel), await register(channel)
    projects = stub(channel)
    project = await create_project(projects, owner)
    await add_member(projects, owner, project.id, viewer, projects_pb2.PROJECT_ROLE_VIEWER)
    task = await create_task(projects, owner, project.id, title="parse dates")
    yield World(forge, channel, owner, viewer, project.id, task.id, _ports(forge))
    # Removes the project's sandboxes too.
    await projects.DeleteProject(
        projects_pb2.DeleteProjectRequest(project_id=project.id), metadata=owner.metadata
    )


# --- bash ------------------------------------------------------------------------------


async def test_bash_streams_exec_events_and_reports_the_exit(world: World) -> None:
    outcome = await world.call("bash", command="echo out; echo err >&2; exit 3")
    assert outcome.is_error
    assert outcome.content.startswith("exit code 3 (")
    assert "out" in outcome.content
    assert "err" in outcome.content
    reported = [event.event for event in world.events if isinstance(event, ExecReported)]
    assert isinstance(reported[0], ExecBegan)
    assert isinstance(reported[-1], ExecEnded)
    assert reported[-1].exit_code == 3
    chunks = {(c.stream, c.data.strip()) for c in reported if isinstance(c, ExecChunk)}
    assert chunks == {("stdout", b"out"), ("stderr", b"err")}

    ok = await world.call("bash", command="python3 -c 'print(6 * 7)'")
    assert not ok.is_error
    assert ok.content.startswith("exit code 0 (")
    assert ok.content.endswith("\n42\n")


async def test_bash_output_is_cut_for_the_model(world: World) -> None:
    outcome = await world.call("bash", command="seq 1 20000")
    assert not outcome.is_error
    assert "output shown truncated to 400 characters" in outcome.content.split("\n", 1)[0]
    assert len(outcome.content) < 600
    assert "\n1\n2\n3\n" in outcome.content
    assert outcome.content.endswith("19999\n20000\n")


async def test_bash_timeout_kills_the_command(world: World) -> None:
    outcome = await world.call("bash", command="sleep 30", timeout_seconds=1)
    assert outcome.is_error
    assert "timed out and was killed" in outcome.content


async def test_cancelling_bash_kills_the_process_group(world: World) -> None:
    ctx = world.context()
    running = asyncio.create_task(world.call("bash", ctx, command="sleep 600 & sleep 601"))
    await asyncio.wait_for(world.emitted.wait(), 60)
    assert isinstance(world.events[0], ExecReported)
    assert isinstance(world.events[0].event, ExecBegan)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    port = world.ports.sandbox.get()
    sandbox_id = await ctx.sandbox()

    async def gone() -> bool:
        async with aclosing(
            port.exec(ctx.caller, sandbox_id, "ps -eo args=", timedelta(seconds=10))
        ) as events:
            output = b"".join([e.data async for e in events if isinstance(e, ExecChunk)])
        return b"sleep 60" not in output

    await eventually(gone, timeout=15)


# --- editor ----------------------------------------------------------------------------


async def test_editor_edits_real_files(world: World) -> None:
    created = await world.call(
        "editor", command="create", path="pkg/dates.py", file_text="def f():\n    return 1\n"
    )
    assert not created.is_error, created.content
    replaced = await world.call(
        "editor", command="str_replace", path="/workspace/pkg/dates.py", old_str="1", new_str="2"
    )
    assert not replaced.is_error, replaced.content
    inserted = await world.call(
        "editor", command="insert", path="pkg/dates.py", insert_line=0, new_str="import re"
    )
    assert not inserted.is_error, inserted.content
    viewed = await world.call("editor", command="view", path="pkg/dates.py")
    assert viewed.content == "     1\timport re\n     2\tdef f():\n     3\t    return 2"
    ran = await world.call("bash", command="cat pkg/dates.py")
    assert ran.content.endswith("\nimport re\ndef f():\n    return 2\n")

    listing = await world.call("editor", command="view", path=".")
    assert not listing.is_error, listing.content
    assert "/workspace/pkg/\n" in listing.content
    assert "/workspace/pkg/dates.py" in listing.content

    missing = await world.call("editor", command="view", path="nope.py")
    assert missing.is_error
    assert "FILE_NOT_FOUND" in missing.content


async def test_a_viewer_cannot_edit(world: World) -> None:
    await world.context().sandbox()  # the run's sandbox, made by the owner
    ctx = world.context(world.viewer)
    denied = await world.call("editor", ctx, command="create", path="a.txt", file_text="x")
    assert denied.is_error
    assert "PROJECT_ROLE_TOO_LOW" in denied.content


# --- save_artifact ---------------------------------------------------------------------


async def test_save_artifact_from_a_file_then_a_new_version(world: World) -> None:
    ctx = world.context()
    await world.call("editor", ctx, command="create", path="src/report.md", file_text="# One\n")
    first = await world.call("save_artifact", ctx, path="src/report.md", title="Report")
    assert not first.is_error, first.content
    assert "version 1" in first.content
    saved = [event.artifact for event in world.events if isinstance(event, ArtifactSaved)]
    assert len(saved) == 1
    artifact = saved[0]
    assert isinstance(artifact, artifacts_pb2.Artifact)
    assert artifact.filename == "report.md"
    assert artifact.origin == artifacts_pb2.ARTIFACT_ORIGIN_RUN
    assert artifact.run_id == str(ctx.run_id)

    second = await world.call("save_artifact", ctx, filename="report.md", content="# Two\n")
    assert not second.is_error, second.content
    assert "new version" in second.content
    assert "version 2" in second.content
    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(world.channel)
    for version, content in ((1, b"# One\n"), (2, b"# Two\n")):
        body = await artifacts.GetArtifactContent(
            artifacts_pb2.GetArtifactContentRequest(artifact_id=artifact.id, version=version),
            metadata=world.owner.metadata,
        )
        assert body.data == content


async def test_save_artifact_of_a_directory_saves_a_tree_and_versions_it(world: World) -> None:
    ctx = world.context()
    made = await world.call(
        "bash",
        ctx,
        command="mkdir -p site/css && printf '<h1>hi</h1>' > site/index.html "
        "&& printf 'h1{}' > site/css/main.css && ln -s /etc/passwd site/passwd",
    )
    assert not made.is_error, made.content
    first = await world.call("save_artifact", ctx, path="site", title="Site")
    assert not first.is_error, first.content
    assert "2 files" in first.content
    assert "version 1" in first.content
    saved = [event.artifact for event in world.events if isinstance(event, ArtifactSaved)]
    artifact = saved[-1]
    assert isinstance(artifact, artifacts_pb2.Artifact)
    assert (artifact.kind, artifact.filename, artifact.title) == (
        artifacts_pb2.ARTIFACT_KIND_TREE,
        "site",
        "Site",
    )
    assert artifact.origin == artifacts_pb2.ARTIFACT_ORIGIN_RUN

    # The same files again: no new version; a changed file: version 2.
    same = await world.call("save_artifact", ctx, path="/workspace/site")
    assert "version 1" in same.content
    await world.call("bash", ctx, command="printf '<h1>bye</h1>' > site/index.html")
    second = await world.call("save_artifact", ctx, path="site")
    assert "new version" in second.content
    assert "version 2" in second.content
    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(world.channel)
    listed = await artifacts.ListArtifactFiles(
        artifacts_pb2.ListArtifactFilesRequest(artifact_id=artifact.id),
        metadata=world.owner.metadata,
    )
    assert [f.path for f in listed.files] == ["css/main.css", "index.html"]
    body = await artifacts.GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=artifact.id, path="index.html"),
        metadata=world.owner.metadata,
    )
    assert body.data == b"<h1>bye</h1>"


async def test_save_artifact_of_a_missing_file_is_a_tool_error(world: World) -> None:
    outcome = await world.call("save_artifact", path="nothing.py")
    assert outcome.is_error
    assert "FILE_NOT_FOUND" in outcome.content


# --- update_task -----------------------------------------------------------------------


async def test_update_task_moves_the_task_and_adds_a_note(world: World) -> None:
    outcome = await world.call("update_task", status="review", note="Parser written.")
    assert not outcome.is_error, outcome.content
    assert "'parse dates' is in review" in outcome.content
    task = await stub(world.channel).GetTask(
        projects_pb2.GetTaskRequest(project_id=world.project_id, task_id=world.task_id),
        metadata=world.owner.metadata,
    )
    assert task.status == projects_pb2.TASK_STATUS_REVIEW
    assert "Parser written." in task.description

    viewer = await world.call("update_task", world.context(world.viewer), status="done")
    assert viewer.is_error
    assert "PROJECT_ROLE_TOO_LOW" in viewer.content


# --- the echo model's run script over the real tools -----------------------------------


async def test_the_echo_script_drives_the_real_tools(world: World) -> None:
    goal = "Run this:\n\n```python\n# file: answer.py\nprint(6 * 7)\n```\n"
    ctx = world.context()
    messages = [ChatMessage.user(goal)]
    names: list[str] = []
    final: str | None = None
    while final is None and len(names) < 10:
        answer = compose(ChatRequest("echo", messages, tools=REGISTRY.specs(REGISTRY.names)))
        call = answer.tool_call
        assert call is not None, answer.text
        names.append(call.name)
        outcome = await REGISTRY.run(ctx, call.name, REGISTRY.parse(call.name, call.arguments_json))
        assert not outcome.is_error, outcome.content
        final = outcome.final_answer
        messages += [
            ChatMessage.assistant(answer.text, [call]),
            ChatMessage.tool([ToolResult(call.id, call.name, outcome.content)]),
        ]
    assert names == ["editor", "bash", "save_artifact", "finish"]
    assert final is not None
    assert "```\n42\n```" in final
    output = b"".join(
        event.event.data
        for event in world.events
        if isinstance(event, ExecReported) and isinstance(event.event, ExecChunk)
    )
    assert output == b"42\n"
    (saved,) = [event.artifact for event in world.events if isinstance(event, ArtifactSaved)]
    assert isinstance(saved, artifacts_pb2.Artifact)
    content = await artifacts_pb2_grpc.ArtifactServiceStub(world.channel).GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=saved.id),
        metadata=world.owner.metadata,
    )
    assert content.data == b"# file: answer.py\nprint(6 * 7)\n"
