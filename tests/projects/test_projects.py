"""Projects: CRUD through gRPC and through Envoy's REST mapping; input validation."""

from __future__ import annotations

import uuid

import aiohttp
import grpc
import pytest
from forge.projects.v1 import projects_pb2 as pb
from google.protobuf import field_mask_pb2

from tests.projects.support import add_member, create_project, stub
from tests.support.accounts import Account, register
from tests.support.rpc import error_info, field_violations


async def test_crud_round_trip_over_grpc(channel: grpc.aio.Channel, user: Account) -> None:
    projects = stub(channel)
    created = await create_project(
        projects,
        user,
        name="  Forge  ",
        description="An agent platform",
        repository_url="https://github.com/acme/forge.git",
        default_runtime="python",
    )
    assert uuid.UUID(created.id).version == 7
    assert created.name == "Forge"
    assert created.repository_url == "https://github.com/acme/forge"
    assert created.caller_role == pb.PROJECT_ROLE_OWNER
    assert created.creator_user_id == user.user_id
    assert created.create_time.seconds > 0

    got = await projects.GetProject(
        pb.GetProjectRequest(project_id=created.id), metadata=user.metadata
    )
    assert got == created

    listed = await projects.ListProjects(pb.ListProjectsRequest(), metadata=user.metadata)
    assert [p.id for p in listed.projects] == [created.id]

    updated = await projects.UpdateProject(
        pb.UpdateProjectRequest(
            project=pb.Project(id=created.id, name="Forge 2", description="not in the mask"),
            update_mask=field_mask_pb2.FieldMask(paths=["name", "default_runtime"]),
        ),
        metadata=user.metadata,
    )
    assert (updated.name, updated.description) == ("Forge 2", "An agent platform")
    assert updated.default_runtime == ""
    assert updated.update_time.ToDatetime() >= created.update_time.ToDatetime()

    # No mask: every field the request sets (AIP-134).
    implied = await projects.UpdateProject(
        pb.UpdateProjectRequest(project=pb.Project(id=created.id, description="New words")),
        metadata=user.metadata,
    )
    assert (implied.name, implied.description) == ("Forge 2", "New words")

    members = await projects.ListMembers(
        pb.ListMembersRequest(project_id=created.id), metadata=user.metadata
    )
    assert [(m.user_id, m.role) for m in members.members] == [(user.user_id, pb.PROJECT_ROLE_OWNER)]

    await projects.DeleteProject(
        pb.DeleteProjectRequest(project_id=created.id), metadata=user.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await projects.GetProject(
            pb.GetProjectRequest(project_id=created.id), metadata=user.metadata
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(gone.value).reason == "PROJECT_NOT_FOUND"
    listed = await projects.ListProjects(pb.ListProjectsRequest(), metadata=user.metadata)
    assert list(listed.projects) == []


async def test_crud_round_trip_through_envoy(
    http: aiohttp.ClientSession, channel: grpc.aio.Channel
) -> None:
    account = await register(channel)
    headers = {"authorization": f"Bearer {account.access_token}"}
    body = {"name": "REST project", "repositoryUrl": "https://github.com/acme/app"}
    async with http.post("/v1/projects", json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        created = await r.json()
    assert created["name"] == "REST project"
    assert created["repositoryUrl"] == "https://github.com/acme/app"
    assert created["callerRole"] == "PROJECT_ROLE_OWNER"
    assert created["creatorUserId"] == account.user_id
    assert "createTime" in created
    project_path = f"/v1/projects/{created['id']}"

    async with http.get(project_path, headers=headers) as r:
        assert r.status == 200
        assert (await r.json())["id"] == created["id"]

    patch = {"name": "Renamed", "description": "not in the mask"}
    async with http.patch(
        project_path, params={"updateMask": "name"}, json=patch, headers=headers
    ) as r:
        assert r.status == 200, await r.text()
        updated = await r.json()
    assert updated["name"] == "Renamed"
    assert "description" not in updated

    async with http.patch(
        project_path, params={"updateMask": "callerRole"}, json={}, headers=headers
    ) as r:
        assert r.status == 400

    async with http.get("/v1/projects", headers=headers) as r:
        assert r.status == 200
        assert [p["name"] for p in (await r.json())["projects"]] == ["Renamed"]

    async with http.post(
        f"{project_path}/tasks", json={"title": "Write docs"}, headers=headers
    ) as r:
        assert r.status == 200, await r.text()
        task = await r.json()
    assert task["status"] == "TASK_STATUS_TODO"
    async with http.post(
        f"{project_path}/tasks/{task['id']}:move",
        json={"status": "TASK_STATUS_DONE"},
        headers=headers,
    ) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["status"] == "TASK_STATUS_DONE"
    async with http.get(
        f"{project_path}/tasks", params={"status": "TASK_STATUS_DONE"}, headers=headers
    ) as r:
        assert [t["title"] for t in (await r.json())["tasks"]] == ["Write docs"]

    async with http.delete(project_path, headers=headers) as r:
        assert r.status == 200
    async with http.get(project_path, headers=headers) as r:
        assert r.status == 404
    async with http.get("/v1/projects") as r:
        assert r.status == 401


@pytest.mark.parametrize(
    ("project", "field", "fragment"),
    [
        (pb.Project(name=""), "project.name", "required"),
        (pb.Project(name="   "), "project.name", "required"),
        (pb.Project(name="x" * 101), "project.name", "100"),
        (pb.Project(name="a\nb"), "project.name", "control"),
        (pb.Project(name="ok", description="d" * 2001), "project.description", "2000"),
        *(
            (pb.Project(name="ok", repository_url=url), "project.repository_url", "GitHub")
            for url in (
                "http://github.com/a/b",
                "https://gitlab.com/a/b",
                "https://github.com/a",
                "https://github.com/a/b/c",
                "https://github.com/-a/b",
                "https://github.com/a/..",
            )
        ),
        (pb.Project(name="ok", default_runtime="cobol"), "project.default_runtime", "python"),
    ],
)
async def test_create_project_validates_each_field(
    channel: grpc.aio.Channel, user: Account, project: pb.Project, field: str, fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await stub(channel).CreateProject(
            pb.CreateProjectRequest(project=project), metadata=user.metadata
        )
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(rejected.value)
    assert list(violations) == [field]
    assert fragment in violations[field]


async def test_every_bad_field_is_reported_at_once(
    channel: grpc.aio.Channel, user: Account
) -> None:
    bad = pb.Project(name="", description="d" * 3000, default_runtime="perl")
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await stub(channel).CreateProject(
            pb.CreateProjectRequest(project=bad), metadata=user.metadata
        )
    assert set(field_violations(rejected.value)) == {
        "project.name",
        "project.description",
        "project.default_runtime",
    }


@pytest.mark.parametrize(
    "path", ["id", "caller_role", "creator_user_id", "create_time", "update_time", "owner"]
)
async def test_update_rejects_unknown_or_immutable_paths(
    channel: grpc.aio.Channel, user: Account, path: str
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await projects.UpdateProject(
            pb.UpdateProjectRequest(
                project=pb.Project(id=project.id, name="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["name", path]),
            ),
            metadata=user.metadata,
        )
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"'{path}'" in field_violations(rejected.value)["update_mask"]
    unchanged = await projects.GetProject(
        pb.GetProjectRequest(project_id=project.id), metadata=user.metadata
    )
    assert unchanged.name == project.name


async def test_update_validates_the_masked_fields(channel: grpc.aio.Channel, user: Account) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await projects.UpdateProject(
            pb.UpdateProjectRequest(
                project=pb.Project(id=project.id, name="", repository_url="nope"),
                update_mask=field_mask_pb2.FieldMask(paths=["name", "repository_url"]),
            ),
            metadata=user.metadata,
        )
    assert set(field_violations(rejected.value)) == {"project.name", "project.repository_url"}


async def test_ids_are_required(channel: grpc.aio.Channel, user: Account) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        await stub(channel).GetProject(pb.GetProjectRequest(), metadata=user.metadata)
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "project_id" in field_violations(rejected.value)


async def test_caller_role_reflects_the_caller(
    channel: grpc.aio.Channel, user: Account, admin: Account
) -> None:
    projects = stub(channel)
    project = await create_project(projects, user)
    editor = await register(channel)
    await add_member(projects, user, project.id, editor, pb.PROJECT_ROLE_EDITOR)
    as_editor = await projects.GetProject(
        pb.GetProjectRequest(project_id=project.id), metadata=editor.metadata
    )
    assert as_editor.caller_role == pb.PROJECT_ROLE_EDITOR
    as_admin = await projects.GetProject(
        pb.GetProjectRequest(project_id=project.id), metadata=admin.metadata
    )
    assert as_admin.caller_role == pb.PROJECT_ROLE_UNSPECIFIED
    everything = await projects.ListProjects(
        pb.ListProjectsRequest(all=True, page_size=1000), metadata=admin.metadata
    )
    assert project.id in {p.id for p in everything.projects}
    own = await projects.ListProjects(
        pb.ListProjectsRequest(page_size=1000), metadata=admin.metadata
    )
    assert project.id not in {p.id for p in own.projects}
