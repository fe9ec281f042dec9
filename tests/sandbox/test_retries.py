"""Request ids on the sandbox service: a retried RunCode gets the first run's events
instead of running the code again; a CreateSandbox whose caller timed out still finishes,
and the retry gets that sandbox instead of a second one."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import grpc
from forge.sandbox.v1 import sandbox_pb2

from tests.sandbox.conftest import RpcTeam, RpcWorld
from tests.support.accounts import Account

RANDOM_LINE = "import secrets\nprint(secrets.token_hex(8), flush=True)\n"


def _auth(account: Account) -> tuple[tuple[str, str], ...]:
    return account.metadata


def _run_code(team: RpcTeam, code: str, request_id: str) -> sandbox_pb2.RunCodeRequest:
    return sandbox_pb2.RunCodeRequest(
        project_id=team.project_id, language="python", code=code, request_id=request_id
    )


async def _events(
    rpc: RpcWorld, team: RpcTeam, request: sandbox_pb2.RunCodeRequest
) -> list[sandbox_pb2.ExecEvent]:
    call = rpc.stub.RunCode(request, metadata=_auth(team.editor), timeout=60)
    return [event async for event in call]


def _stdout(events: list[sandbox_pb2.ExecEvent]) -> bytes:
    return b"".join(event.stdout for event in events)


async def test_a_retried_run_code_replays_the_first_run(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    request = _run_code(rpc_team, RANDOM_LINE, str(uuid.uuid4()))
    first = await _events(rpc, rpc_team, request)
    again = await _events(rpc, rpc_team, request)
    assert first[-1].exit.exit_code == 0
    assert len(_stdout(first)) == 17
    assert again == first  # the same random line, the same sandbox, the same seqs

    fresh = await _events(rpc, rpc_team, _run_code(rpc_team, RANDOM_LINE, str(uuid.uuid4())))
    assert _stdout(fresh) != _stdout(first)


async def test_a_retry_during_the_run_waits_for_it_and_gets_its_events(
    rpc: RpcWorld, rpc_team: RpcTeam
) -> None:
    code = RANDOM_LINE + "import time\ntime.sleep(1.5)\nprint('done')\n"
    request = _run_code(rpc_team, code, "during-the-run")
    original = rpc.stub.RunCode(request, metadata=_auth(rpc_team.editor), timeout=60)
    seen: list[sandbox_pb2.ExecEvent] = []
    while not _stdout(seen):
        event = await original.read()
        assert isinstance(event, sandbox_pb2.ExecEvent)
        seen.append(event)
    retry = asyncio.ensure_future(_events(rpc, rpc_team, request))
    while (event := await original.read()) is not grpc.aio.EOF:
        assert isinstance(event, sandbox_pb2.ExecEvent)
        seen.append(event)
    assert await asyncio.wait_for(retry, 60) == seen
    assert seen[-1].exit.exit_code == 0


async def test_a_cancelled_run_gives_its_id_back(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    request = _run_code(rpc_team, RANDOM_LINE + "import time\ntime.sleep(60)\n", "cancelled")
    request.timeout.FromSeconds(3)
    original = rpc.stub.RunCode(request, metadata=_auth(rpc_team.editor), timeout=60)
    first_line = b""
    while not first_line:
        event = await original.read()
        assert isinstance(event, sandbox_pb2.ExecEvent)
        first_line = event.stdout
    original.cancel()

    # The cancelled run did not finish: the retry runs the code anew (a new random line),
    # until its own timeout.
    retried = await _events(rpc, rpc_team, request)
    assert retried[0].WhichOneof("event") == "started"
    assert _stdout(retried)
    assert _stdout(retried) != first_line
    assert retried[-1].exit.reason == sandbox_pb2.EXIT_REASON_TIMEOUT


async def test_a_create_sandbox_whose_caller_timed_out_is_returned_to_the_retry(
    rpc: RpcWorld, rpc_team: RpcTeam
) -> None:
    request = sandbox_pb2.CreateSandboxRequest(
        project_id=rpc_team.project_id,
        sandbox=sandbox_pb2.Sandbox(runtime="python"),
        request_id=str(uuid.uuid4()),
    )
    # The caller gives up at once (or, on a fast day, gets its sandbox); the work goes on.
    with contextlib.suppress(grpc.aio.AioRpcError):
        await rpc.stub.CreateSandbox(request, metadata=_auth(rpc_team.editor), timeout=0.05)
    created = await rpc.stub.CreateSandbox(request, metadata=_auth(rpc_team.editor), timeout=60)
    again = await rpc.stub.CreateSandbox(request, metadata=_auth(rpc_team.editor), timeout=60)
    assert again == created
    listed = await rpc.stub.ListSandboxes(
        sandbox_pb2.ListSandboxesRequest(project_id=rpc_team.project_id),
        metadata=_auth(rpc_team.editor),
    )
    assert [sandbox.id for sandbox in listed.sandboxes] == [created.id]
    await rpc.stub.DeleteSandbox(
        sandbox_pb2.DeleteSandboxRequest(sandbox_id=created.id), metadata=_auth(rpc_team.editor)
    )
