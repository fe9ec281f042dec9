"""CancelExecution stops an execution from any server process: a second server on the rpc
world's database and Docker engine cancels what the first one relays (and the other way
round, through Envoy's REST route): the stream ends with `exit` reason CANCELLED and the
process is gone; cancelling an ended execution changes nothing; viewers are refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc

from gateway.launcher import EnvoyProcess
from server.app import ForgeServer
from server.db.sandbox_models import SandboxExecution
from tests.sandbox.conftest import RpcTeam, RpcWorld, sandbox_settings, start_server
from tests.support.accounts import Account
from tests.support.waiting import eventually

DEADLINE = 30
MARKER = "sleep 61"
"""The command cancelled; nothing of it may be left in the container."""

ExecCall = grpc.aio.UnaryStreamCall[sandbox_pb2.ExecRequest, sandbox_pb2.ExecEvent]


@pytest.fixture(scope="module")
async def other(
    rpc: RpcWorld, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[sandbox_pb2_grpc.SandboxServiceAsyncStub]:
    """SandboxService of a second server on the same database, engine and namespace."""
    url = rpc.settings.database_url
    assert url is not None
    settings = sandbox_settings(
        url.get_secret_value(),
        tmp_path_factory.mktemp("cancel-other"),
        sandbox_namespace=rpc.settings.sandbox_namespace,
        jwt_secret=rpc.settings.jwt_secret,
        sandbox_pool_size=0,
    )
    app: ForgeServer = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield sandbox_pb2_grpc.SandboxServiceStub(channel)
    finally:
        await app.stop(grace=0)


async def new_sandbox(rpc: RpcWorld, team: RpcTeam) -> str:
    sandbox = await rpc.stub.CreateSandbox(
        sandbox_pb2.CreateSandboxRequest(
            project_id=team.project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    return sandbox.id


async def running(
    stub: sandbox_pb2_grpc.SandboxServiceAsyncStub, account: Account, sandbox_id: str
) -> tuple[ExecCall, str]:
    """A long command started through `stub`, its output begun; the call and its id."""
    request = sandbox_pb2.ExecRequest(sandbox_id=sandbox_id)
    request.shell = f"echo ready; {MARKER}"
    call = stub.Exec(request, metadata=account.metadata, timeout=DEADLINE)
    started = await call.read()
    assert isinstance(started, sandbox_pb2.ExecEvent)
    assert started.HasField("started")
    ready = await call.read()
    assert isinstance(ready, sandbox_pb2.ExecEvent)
    assert ready.stdout == b"ready\n"
    return call, started.started.execution_id


async def rest_of(call: ExecCall) -> list[sandbox_pb2.ExecEvent]:
    events = []
    while (event := await call.read()) is not grpc.aio.EOF:
        assert isinstance(event, sandbox_pb2.ExecEvent)
        events.append(event)
    return events


async def cancel(
    stub: sandbox_pb2_grpc.SandboxServiceAsyncStub,
    account: Account,
    sandbox_id: str,
    execution_id: str,
) -> None:
    await stub.CancelExecution(
        sandbox_pb2.CancelExecutionRequest(sandbox_id=sandbox_id, execution_id=execution_id),
        metadata=account.metadata,
        timeout=DEADLINE,
    )


async def check_gone(rpc: RpcWorld, account: Account, sandbox_id: str) -> None:
    async def nothing_left() -> bool:
        request = sandbox_pb2.ExecRequest(sandbox_id=sandbox_id, argv=["ps", "-eo", "args="])
        call = rpc.stub.Exec(request, metadata=account.metadata, timeout=DEADLINE)
        listing = b"".join([event.stdout async for event in call])
        return MARKER.encode() not in listing

    await eventually(nothing_left, timeout=10)


async def stored(rpc: RpcWorld, execution_id: str) -> tuple[str, str | None]:
    async with rpc.sessions() as db:
        row = await db.get(SandboxExecution, uuid.UUID(execution_id))
        assert row is not None
        return row.state, row.reason


async def test_an_execution_on_one_server_is_cancelled_through_another(
    rpc: RpcWorld, rpc_team: RpcTeam, other: sandbox_pb2_grpc.SandboxServiceAsyncStub
) -> None:
    sandbox_id = await new_sandbox(rpc, rpc_team)
    call, execution_id = await running(rpc.stub, rpc_team.editor, sandbox_id)
    await cancel(other, rpc_team.editor, sandbox_id, execution_id)
    events = await rest_of(call)
    assert [event.WhichOneof("event") for event in events] == ["exit"]
    assert events[-1].exit.reason == sandbox_pb2.EXIT_REASON_CANCELLED
    assert await call.code() == grpc.StatusCode.OK
    await check_gone(rpc, rpc_team.editor, sandbox_id)

    async def recorded() -> tuple[str, str | None] | None:
        found = await stored(rpc, execution_id)
        return found if found[0] != "running" else None

    assert await eventually(recorded, timeout=10) == ("finished", "cancelled")
    # Cancelling an ended execution changes nothing (from either server).
    await cancel(other, rpc_team.editor, sandbox_id, execution_id)
    await cancel(rpc.stub, rpc_team.owner, sandbox_id, execution_id)
    assert await stored(rpc, execution_id) == ("finished", "cancelled")


async def test_only_editors_cancel(
    rpc: RpcWorld, rpc_team: RpcTeam, other: sandbox_pb2_grpc.SandboxServiceAsyncStub
) -> None:
    sandbox_id = await new_sandbox(rpc, rpc_team)
    call, execution_id = await running(rpc.stub, rpc_team.editor, sandbox_id)
    refusals = [
        (rpc_team.viewer, sandbox_id, execution_id, grpc.StatusCode.PERMISSION_DENIED),
        (rpc_team.stranger, sandbox_id, execution_id, grpc.StatusCode.NOT_FOUND),
        (rpc_team.editor, sandbox_id, "not-an-id", grpc.StatusCode.NOT_FOUND),
        (rpc_team.editor, sandbox_id, sandbox_id, grpc.StatusCode.NOT_FOUND),
        (rpc_team.editor, sandbox_id, "", grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for account, sid, eid, code in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await cancel(other, account, sid, eid)
        assert refused.value.code() == code, (account.email, eid)
    assert await stored(rpc, execution_id) == ("running", None)
    await cancel(other, rpc_team.owner, sandbox_id, execution_id)
    events = await rest_of(call)
    assert events[-1].exit.reason == sandbox_pb2.EXIT_REASON_CANCELLED


async def test_rest_cancel_through_the_gateway(
    rpc: RpcWorld,
    rpc_team: RpcTeam,
    rpc_envoy: EnvoyProcess,
    other: sandbox_pb2_grpc.SandboxServiceAsyncStub,
) -> None:
    # Streaming on the second server, cancelled through Envoy in front of the first.
    sandbox_id = await new_sandbox(rpc, rpc_team)
    call, execution_id = await running(other, rpc_team.editor, sandbox_id)
    path = f"/v1/sandboxes/{sandbox_id}/executions/{execution_id}:cancel"
    async with aiohttp.ClientSession(base_url=rpc_envoy.base_url) as http:
        viewer = {"authorization": f"Bearer {rpc_team.viewer.access_token}"}
        async with http.post(path, headers=viewer) as refused:
            assert refused.status == 403
        editor = {"authorization": f"Bearer {rpc_team.editor.access_token}"}
        async with http.post(path, headers=editor) as response:
            assert response.status == 200, await response.text()
            assert await response.json() == {}
    events = await rest_of(call)
    assert events[-1].exit.reason == sandbox_pb2.EXIT_REASON_CANCELLED
    await check_gone(rpc, rpc_team.editor, sandbox_id)
