"""One meaning of an update mask in every service (AIP-134): the named paths are updated
(a named field sent empty is cleared); an empty mask updates every field the request
populates and leaves the rest as it was."""

from __future__ import annotations

import aiohttp
import grpc
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.protobuf import field_mask_pb2

from tests.support.accounts import Account

NO_MASK = field_mask_pb2.FieldMask()


async def _project(channel: grpc.aio.Channel, user: Account) -> projects_pb2.Project:
    return await projects_pb2_grpc.ProjectServiceStub(channel).CreateProject(
        projects_pb2.CreateProjectRequest(
            project=projects_pb2.Project(name="Masks", description="first words")
        ),
        metadata=user.metadata,
    )


async def test_projects_and_tasks(channel: grpc.aio.Channel, user: Account) -> None:
    stub = projects_pb2_grpc.ProjectServiceStub(channel)
    project = await _project(channel, user)

    updated = await stub.UpdateProject(
        projects_pb2.UpdateProjectRequest(
            project=projects_pb2.Project(id=project.id, description="second words"),
            update_mask=NO_MASK,
        ),
        metadata=user.metadata,
    )
    assert (updated.name, updated.description) == ("Masks", "second words")

    cleared = await stub.UpdateProject(
        projects_pb2.UpdateProjectRequest(
            project=projects_pb2.Project(id=project.id),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=user.metadata,
    )
    assert (cleared.name, cleared.description) == ("Masks", "")

    task = await stub.CreateTask(
        projects_pb2.CreateTaskRequest(
            project_id=project.id, task=projects_pb2.Task(title="Write", description="tests")
        ),
        metadata=user.metadata,
    )
    renamed = await stub.UpdateTask(
        projects_pb2.UpdateTaskRequest(
            project_id=project.id, task=projects_pb2.Task(id=task.id, title="Write more")
        ),
        metadata=user.metadata,
    )
    assert (renamed.title, renamed.description) == ("Write more", "tests")


async def test_current_user(channel: grpc.aio.Channel, user: Account) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    before = await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=user.metadata)
    unchanged = await stub.UpdateCurrentUser(
        auth_pb2.UpdateCurrentUserRequest(user=auth_pb2.User()), metadata=user.metadata
    )
    assert unchanged.display_name == before.display_name
    renamed = await stub.UpdateCurrentUser(
        auth_pb2.UpdateCurrentUserRequest(user=auth_pb2.User(display_name="Renamed")),
        metadata=user.metadata,
    )
    assert renamed.display_name == "Renamed"


async def test_agents_and_conversations(channel: grpc.aio.Channel, user: Account) -> None:
    stub = agents_pb2_grpc.AgentServiceStub(channel)
    project = await _project(channel, user)
    agent = await stub.CreateAgent(
        agents_pb2.CreateAgentRequest(
            project_id=project.id,
            agent=agents_pb2.Agent(
                name="Reviewer", description="reads code", model="echo", system_prompt="Be kind."
            ),
        ),
        metadata=user.metadata,
    )
    updated = await stub.UpdateAgent(
        agents_pb2.UpdateAgentRequest(
            project_id=project.id, agent=agents_pb2.Agent(id=agent.id, description="reads more")
        ),
        metadata=user.metadata,
    )
    assert (updated.name, updated.description, updated.model, updated.system_prompt) == (
        "Reviewer",
        "reads more",
        "echo",
        "Be kind.",
    )

    conversation = await stub.CreateConversation(
        agents_pb2.CreateConversationRequest(
            project_id=project.id,
            conversation=agents_pb2.Conversation(title="Talk", agent_id=agent.id),
        ),
        metadata=user.metadata,
    )
    retitled = await stub.UpdateConversation(
        agents_pb2.UpdateConversationRequest(
            conversation=agents_pb2.Conversation(id=conversation.id, title="Talk more")
        ),
        metadata=user.metadata,
    )
    assert (retitled.title, retitled.agent_id) == ("Talk more", agent.id)


async def test_artifacts(channel: grpc.aio.Channel, user: Account) -> None:
    stub = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    project = await _project(channel, user)
    artifact = await stub.CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=project.id,
            artifact=artifacts_pb2.Artifact(title="Notes", filename="notes.md"),
            content=b"# notes\n",
        ),
        metadata=user.metadata,
    )
    retitled = await stub.UpdateArtifact(
        artifacts_pb2.UpdateArtifactRequest(
            artifact=artifacts_pb2.Artifact(id=artifact.id, title="More notes")
        ),
        metadata=user.metadata,
    )
    assert (retitled.title, retitled.filename, retitled.latest_version) == (
        "More notes",
        "notes.md",
        artifact.latest_version,
    )


async def test_rest_patch_without_a_mask(
    channel: grpc.aio.Channel, user: Account, http: aiohttp.ClientSession
) -> None:
    project = await _project(channel, user)
    async with http.patch(
        f"/v1/projects/{project.id}",
        json={"description": "from REST"},
        headers={"authorization": f"Bearer {user.access_token}"},
    ) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert (body["name"], body["description"]) == ("Masks", "from REST")
