"""The artifact port (core/ports.py ArtifactPort) as a running server offers it to agent runs:
a run's file becomes the project's artifact of that name, or its next version."""

from __future__ import annotations

import uuid

import grpc
import pytest
from forge.artifacts.v1 import artifacts_pb2

from server.app import ForgeServer
from server.core.context import Caller
from server.core.errors import InvalidArgument, NotFound, PermissionDenied
from server.core.ports import ArtifactPort
from tests.artifacts.service_support import DEADLINE, Team, new_team, sha256, stub
from tests.support.accounts import Account

PROGRAM = b"def parse(text):\n    return text\n"
FIXED = b"def parse(text):\n    return text.strip()\n"


def _port(forge: ForgeServer) -> ArtifactPort:
    module = next(module for module in forge.modules if module.name == "artifacts")
    assert module.offers.artifacts is not None
    return module.offers.artifacts


def _caller(account: Account) -> Caller:
    return Caller(user_id=uuid.UUID(account.user_id), roles=frozenset({"user"}))


@pytest.fixture
async def team(channel: grpc.aio.Channel) -> Team:
    return await new_team(channel)


async def _content(channel: grpc.aio.Channel, team: Team, artifact_id: str, version: int) -> bytes:
    body = await stub(channel).GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=artifact_id, version=version),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    return bytes(body.data)


async def test_a_save_creates_then_versions_the_artifact(
    forge: ForgeServer, channel: grpc.aio.Channel, team: Team
) -> None:
    port = _port(forge)
    project_id = uuid.UUID(team.project_id)
    first_run, second_run = uuid.uuid4(), uuid.uuid4()

    first = await port.save_from_run(
        _caller(team.editor), project_id, first_run, "src/parse.py", PROGRAM, "The parser"
    )
    assert first.created
    assert first.version == 1
    message = first.message
    assert isinstance(message, artifacts_pb2.Artifact)
    assert message.id == str(first.artifact_id)
    assert message.project_id == team.project_id
    assert (message.filename, message.title) == ("src/parse.py", "The parser")
    assert message.origin == artifacts_pb2.ARTIFACT_ORIGIN_RUN
    assert message.run_id == str(first_run)
    assert message.creator_user_id == team.editor.user_id
    assert message.kind == artifacts_pb2.ARTIFACT_KIND_CODE
    assert (message.language, message.content_type) == ("python", "text/x-python")
    assert (message.latest_version, message.size_bytes) == (1, len(PROGRAM))
    assert message.sha256 == sha256(PROGRAM)

    second = await port.save_from_run(
        _caller(team.owner), project_id, second_run, "src/parse.py", FIXED
    )
    assert not second.created
    assert (second.artifact_id, second.version) == (first.artifact_id, 2)
    message = second.message
    assert isinstance(message, artifacts_pb2.Artifact)
    assert message.origin == artifacts_pb2.ARTIFACT_ORIGIN_RUN
    assert message.run_id == str(second_run)
    assert message.title == "The parser"  # no title given: kept
    assert (message.latest_version, message.sha256) == (2, sha256(FIXED))
    # The API shows the same artifact, both versions and who made each.
    assert (
        await stub(channel).GetArtifact(
            artifacts_pb2.GetArtifactRequest(artifact_id=message.id),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
        == message
    )
    versions = await stub(channel).ListArtifactVersions(
        artifacts_pb2.ListArtifactVersionsRequest(artifact_id=message.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert [(v.version, v.run_id, v.creator_user_id) for v in versions.versions] == [
        (1, str(first_run), team.editor.user_id),
        (2, str(second_run), team.owner.user_id),
    ]
    assert await _content(channel, team, message.id, 1) == PROGRAM
    assert await _content(channel, team, message.id, 2) == FIXED

    # The same content again adds no version.
    again = await port.save_from_run(
        _caller(team.editor), project_id, second_run, "src/parse.py", FIXED
    )
    assert (again.artifact_id, again.version, again.created) == (first.artifact_id, 2, False)

    # Another file name is another artifact.
    other = await port.save_from_run(
        _caller(team.editor), project_id, first_run, "README.md", b"# Parser\n"
    )
    assert other.created
    assert other.artifact_id != first.artifact_id
    assert isinstance(other.message, artifacts_pb2.Artifact)
    assert other.message.kind == artifacts_pb2.ARTIFACT_KIND_MARKDOWN
    assert other.message.title == "README.md"


async def test_the_newest_artifact_of_that_name_gets_the_version(
    forge: ForgeServer, channel: grpc.aio.Channel, team: Team
) -> None:
    created = []
    for content in (b"old\n", b"newer\n"):
        created.append(
            await stub(channel).CreateArtifact(
                artifacts_pb2.CreateArtifactRequest(
                    project_id=team.project_id,
                    artifact=artifacts_pb2.Artifact(filename="notes.txt"),
                    content=content,
                ),
                metadata=team.editor.metadata,
                timeout=DEADLINE,
            )
        )
    saved = await _port(forge).save_from_run(
        _caller(team.editor), uuid.UUID(team.project_id), uuid.uuid4(), "notes.txt", b"run\n"
    )
    assert (str(saved.artifact_id), saved.version) == (created[1].id, 2)
    assert isinstance(saved.message, artifacts_pb2.Artifact)
    # Made through the API; the run only added a version.
    assert saved.message.origin == artifacts_pb2.ARTIFACT_ORIGIN_API


async def test_access_and_input_are_checked(forge: ForgeServer, team: Team) -> None:
    port = _port(forge)
    project_id = uuid.UUID(team.project_id)
    run_id = uuid.uuid4()
    with pytest.raises(PermissionDenied):
        await port.save_from_run(_caller(team.viewer), project_id, run_id, "a.py", PROGRAM)
    with pytest.raises(NotFound):
        await port.save_from_run(_caller(team.stranger), project_id, run_id, "a.py", PROGRAM)
    cases = [
        ("", "artifact.filename"),
        ("../a.py", "artifact.filename"),
        ("/etc/a.py", "artifact.filename"),
        ("clip.mp4", "artifact.content_type"),
    ]
    for filename, field in cases:
        with pytest.raises(InvalidArgument) as error:
            await port.save_from_run(_caller(team.editor), project_id, run_id, filename, b"x")
        assert field in [v.field for v in error.value.violations], filename
    too_large = b"x" * (forge.settings.max_upload_bytes + 1)
    with pytest.raises(InvalidArgument) as error:
        await port.save_from_run(_caller(team.editor), project_id, run_id, "big.txt", too_large)
    assert error.value.reason == "UPLOAD_TOO_LARGE"
