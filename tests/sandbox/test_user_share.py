"""A user's live sandboxes across all their projects stay within their share
(`max_sandboxes`); RunCode's throwaway sandboxes are not counted; an admin's override lifts
the limit at once. A user who fills their share of running executions cannot take the
others': their Exec and RunCode still run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2

from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from tests.sandbox.conftest import sandbox_settings, start_server
from tests.sandbox.support import namespace
from tests.support.accounts import Account, register
from tests.support.rpc import error_info, status_of

DEADLINE = 60.0


@pytest.fixture(scope="module")
async def server(
    docker_engine: None, postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ForgeServer]:
    settings = sandbox_settings(
        await postgres.ensure_database("forge_sandbox_shares"),
        tmp_path_factory.mktemp("sandbox-shares"),
        sandbox_namespace=namespace("shares"),
        sandbox_pool_size=0,
        user_max_sandboxes=1,
        user_max_concurrent_execs=2,
    )
    app = await start_server(settings)
    yield app
    await app.stop(grace=0)


@pytest.fixture(scope="module")
async def admin(server: ForgeServer) -> Account:
    """The first account of the fresh database."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        return await register(channel)


async def _project(channel: grpc.aio.Channel, owner: Account, name: str) -> str:
    project = await projects_pb2_grpc.ProjectServiceStub(channel).CreateProject(
        projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name=name)),
        metadata=owner.metadata,
        timeout=DEADLINE,
    )
    return project.id


async def test_sandboxes_per_user_across_projects(server: ForgeServer, admin: Account) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        user = await register(channel)
        sandboxes = sandbox_pb2_grpc.SandboxServiceStub(channel)

        async def create(project_id: str) -> sandbox_pb2.Sandbox:
            return await sandboxes.CreateSandbox(
                sandbox_pb2.CreateSandboxRequest(
                    project_id=project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
                ),
                metadata=user.metadata,
                timeout=DEADLINE,
            )

        first_project = await _project(channel, user, "one")
        second_project = await _project(channel, user, "two")
        created = [await create(first_project)]
        try:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await create(second_project)
            error = refused.value
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_info(error).reason == "USER_SANDBOX_LIMIT_REACHED"
            assert error_info(error).metadata["quota"] == "max_sandboxes"
            failure = error_details_pb2.QuotaFailure()
            [packed] = [d for d in status_of(error).details if d.Is(failure.DESCRIPTOR)]
            packed.Unpack(failure)
            assert failure.violations[0].subject == f"user:{user.user_id}"
            assert failure.violations[0].description.startswith("max_sandboxes: 1 of 1")

            # RunCode's throwaway sandbox does not count.
            call = sandboxes.RunCode(
                sandbox_pb2.RunCodeRequest(
                    project_id=second_project, language="python", code="print(6 * 7)"
                ),
                metadata=user.metadata,
                timeout=DEADLINE,
            )
            events = [event async for event in call]
            assert b"".join(e.stdout for e in events) == b"42\n"

            await auth_pb2_grpc.AuthServiceStub(channel).UpdateUserLimits(
                auth_pb2.UpdateUserLimitsRequest(
                    limits=auth_pb2.UserLimits(user_id=user.user_id, max_sandboxes=2),
                    update_mask=field_mask_pb2.FieldMask(paths=["max_sandboxes"]),
                ),
                metadata=admin.metadata,
                timeout=DEADLINE,
            )
            created.append(await create(second_project))
        finally:
            for sandbox in created:
                await sandboxes.DeleteSandbox(
                    sandbox_pb2.DeleteSandboxRequest(sandbox_id=sandbox.id),
                    metadata=user.metadata,
                    timeout=DEADLINE,
                )


async def test_a_user_filling_their_exec_share_leaves_the_others_theirs(
    server: ForgeServer, admin: Account
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        hog, neighbour = await register(channel), await register(channel)
        project_id = await _project(channel, hog, "shared")
        await projects_pb2_grpc.ProjectServiceStub(channel).AddMember(
            projects_pb2.AddMemberRequest(
                project_id=project_id,
                email=neighbour.email,
                role=projects_pb2.PROJECT_ROLE_EDITOR,
            ),
            metadata=hog.metadata,
            timeout=DEADLINE,
        )
        sandboxes = sandbox_pb2_grpc.SandboxServiceStub(channel)
        sandbox = await sandboxes.CreateSandbox(
            sandbox_pb2.CreateSandboxRequest(
                project_id=project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
            ),
            metadata=hog.metadata,
            timeout=DEADLINE,
        )

        def sleeper(account: Account) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
            return sandboxes.Exec(
                sandbox_pb2.ExecRequest(sandbox_id=sandbox.id, argv=["sleep", "60"]),
                metadata=account.metadata,
                timeout=DEADLINE,
            )

        running = [sleeper(hog), sleeper(hog)]
        try:
            for call in running:
                started = await call.read()
                assert isinstance(started, sandbox_pb2.ExecEvent)
                assert started.HasField("started")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await sleeper(hog).read()
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_info(refused.value).reason == "USER_EXEC_LIMIT_REACHED"
            assert error_info(refused.value).metadata["quota"] == "max_concurrent_execs"

            ran = sandboxes.Exec(
                sandbox_pb2.ExecRequest(sandbox_id=sandbox.id, argv=["echo", "mine"]),
                metadata=neighbour.metadata,
                timeout=DEADLINE,
            )
            assert b"".join([e.stdout async for e in ran]) == b"mine\n"
            code = sandboxes.RunCode(
                sandbox_pb2.RunCodeRequest(
                    project_id=project_id, language="python", code="print('also mine')"
                ),
                metadata=neighbour.metadata,
                timeout=DEADLINE,
            )
            assert b"".join([e.stdout async for e in code]) == b"also mine\n"
            # ...and RunCode of the user whose share is full is refused before it starts.
            with pytest.raises(grpc.aio.AioRpcError) as hog_code:
                async for _ in sandboxes.RunCode(
                    sandbox_pb2.RunCodeRequest(project_id=project_id, language="python", code="1"),
                    metadata=hog.metadata,
                    timeout=DEADLINE,
                ):
                    pass
            assert error_info(hog_code.value).reason == "USER_EXEC_LIMIT_REACHED"

            # An admin's override lifts the share at once.
            await auth_pb2_grpc.AuthServiceStub(channel).UpdateUserLimits(
                auth_pb2.UpdateUserLimitsRequest(
                    limits=auth_pb2.UserLimits(user_id=hog.user_id, max_concurrent_execs=3),
                    update_mask=field_mask_pb2.FieldMask(paths=["max_concurrent_execs"]),
                ),
                metadata=admin.metadata,
                timeout=DEADLINE,
            )
            third = sleeper(hog)
            running.append(third)
            started = await third.read()
            assert isinstance(started, sandbox_pb2.ExecEvent)
            assert started.HasField("started")
        finally:
            for call in running:
                call.cancel()
            await sandboxes.DeleteSandbox(
                sandbox_pb2.DeleteSandboxRequest(sandbox_id=sandbox.id),
                metadata=hog.metadata,
                timeout=DEADLINE,
            )
