"""Tree artifacts made of a sandbox directory (CreateArtifact `source_directory`), with a
real Docker sandbox: its regular files become the tree, symbolic links are not followed,
and a file, a foreign sandbox or a directory over the limits is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from forge.artifacts.v1 import artifacts_pb2
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.artifacts.service_support import DEADLINE, Team, new_team, sha256, stub
from tests.support.rpc import error_info, field_violations
from tests.support.waiting import eventually

# A project: two files, one in a subdirectory; links in and out of the workspace, a FIFO.
SETUP = r"""
set -e
mkdir -p app/src app/empty
printf '{"name": "app"}\n' > app/package.json
printf 'export default () => "hi";\n' > app/src/App.tsx
ln -s /etc/passwd app/passwd
ln -s src app/src-link
ln -s ../outside.txt app/outside
printf 'not in app\n' > outside.txt
mkfifo app/pipe
"""


async def _sandbox_serving(channel: grpc.aio.Channel) -> bool:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="forge.sandbox.v1.SandboxService")
    )
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


async def _sandbox(channel: grpc.aio.Channel, team: Team) -> str:
    sandboxes = sandbox_pb2_grpc.SandboxServiceStub(channel)
    made = await sandboxes.CreateSandbox(
        sandbox_pb2.CreateSandboxRequest(
            project_id=team.project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    return str(made.id)


async def _run(channel: grpc.aio.Channel, team: Team, sandbox_id: str, script: str) -> None:
    call = sandbox_pb2_grpc.SandboxServiceStub(channel).Exec(
        sandbox_pb2.ExecRequest(sandbox_id=sandbox_id, shell=script),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    events = [event async for event in call]
    exits = [event.exit for event in events if event.WhichOneof("event") == "exit"]
    assert [exit.exit_code for exit in exits] == [0], events


@pytest.fixture
async def team(channel: grpc.aio.Channel) -> AsyncIterator[Team]:
    await eventually(lambda: _sandbox_serving(channel), timeout=60)
    made = await new_team(channel)
    yield made
    # Removes the project's sandboxes too.
    await projects_pb2_grpc.ProjectServiceStub(channel).DeleteProject(
        projects_pb2.DeleteProjectRequest(project_id=made.project_id),
        metadata=made.owner.metadata,
        timeout=DEADLINE,
    )


def _from_directory(
    team: Team, sandbox_id: str, path: str, **fields: object
) -> artifacts_pb2.CreateArtifactRequest:
    return artifacts_pb2.CreateArtifactRequest(
        project_id=team.project_id,
        artifact=artifacts_pb2.Artifact(**fields),  # type: ignore[arg-type]
        source_directory=artifacts_pb2.SandboxDirectory(sandbox_id=sandbox_id, path=path),
    )


async def test_a_sandbox_directory_becomes_a_tree_of_its_regular_files(
    channel: grpc.aio.Channel, team: Team
) -> None:
    sandbox_id = await _sandbox(channel, team)
    await _run(channel, team, sandbox_id, SETUP)
    artifacts = stub(channel)
    created = await artifacts.CreateArtifact(
        _from_directory(team, sandbox_id, "app", filename="app"),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert created.kind == artifacts_pb2.ARTIFACT_KIND_TREE
    listed = await artifacts.ListArtifactFiles(
        artifacts_pb2.ListArtifactFilesRequest(artifact_id=created.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    expected = {
        "package.json": b'{"name": "app"}\n',
        "src/App.tsx": b'export default () => "hi";\n',
    }
    # No link is followed (nor kept), no FIFO read, empty directories have nothing to keep.
    assert {f.path: f.sha256 for f in listed.files} == {
        path: sha256(data) for path, data in expected.items()
    }
    body = await artifacts.GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=created.id, path="src/App.tsx"),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert body.data == expected["src/App.tsx"]

    # The whole workspace, by an absolute path.
    whole = await artifacts.CreateArtifact(
        _from_directory(team, sandbox_id, "/workspace", filename="workspace"),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    assert whole.size_bytes == sum(len(data) for data in expected.values()) + len(b"not in app\n")


async def test_a_directory_source_is_refused_when_it_is_not_one_or_not_the_projects(
    channel: grpc.aio.Channel, team: Team
) -> None:
    sandbox_id = await _sandbox(channel, team)
    await _run(channel, team, sandbox_id, SETUP)
    artifacts = stub(channel)

    with pytest.raises(grpc.aio.AioRpcError) as a_file:
        await artifacts.CreateArtifact(
            _from_directory(team, sandbox_id, "app/package.json"),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    assert a_file.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(a_file.value).reason == "NOT_A_DIRECTORY"

    with pytest.raises(grpc.aio.AioRpcError) as escaping:
        await artifacts.CreateArtifact(
            _from_directory(team, sandbox_id, "app/src-link/../../.."),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    assert escaping.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await artifacts.CreateArtifact(
            _from_directory(team, sandbox_id, "app/empty"),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    assert field_violations(empty.value) == {
        "source_directory": "a tree artifact needs at least one file"
    }

    request = _from_directory(team, sandbox_id, "app")
    request.content = b"x"
    with pytest.raises(grpc.aio.AioRpcError) as both:
        await artifacts.CreateArtifact(request, metadata=team.editor.metadata, timeout=DEADLINE)
    assert field_violations(both.value) == {
        "source_directory": "set only one of content, files and source_directory"
    }

    # Another project's sandbox, even one the caller may see, is not this project's.
    other = await new_team(channel)
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await artifacts.CreateArtifact(
            _from_directory(other, sandbox_id, "app"),
            metadata=other.editor.metadata,
            timeout=DEADLINE,
        )
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as viewer:
        await artifacts.CreateArtifact(
            _from_directory(team, sandbox_id, "app"),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
    assert error_info(viewer.value).reason == "PROJECT_ROLE_TOO_LOW"

    listed = await artifacts.ListArtifacts(
        artifacts_pb2.ListArtifactsRequest(project_id=team.project_id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert list(listed.artifacts) == []


async def test_a_directory_over_the_file_limit_is_refused(
    channel: grpc.aio.Channel, team: Team
) -> None:
    sandbox_id = await _sandbox(channel, team)
    await _run(channel, team, sandbox_id, "mkdir many && cd many && seq 2001 | xargs touch")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub(channel).CreateArtifact(
            _from_directory(team, sandbox_id, "many"),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(refused.value)
    assert info.reason == "DIRECTORY_TOO_LARGE"
    assert info.metadata["max_files"] == "2000"
