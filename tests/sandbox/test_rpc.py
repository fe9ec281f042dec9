"""SandboxService through a real server: gRPC with status details, streaming with seq numbers
and a terminal event, client cancel, deadlines, REST/SSE through Envoy, and health."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.launcher import EnvoyProcess
from server.db.embedded import EmbeddedPostgres
from server.sandbox.failures import BACKEND_UNAVAILABLE
from server.sandbox.service import SERVICE_NAME
from tests.sandbox.conftest import RpcTeam, RpcWorld, sandbox_settings, start_server
from tests.sandbox.support import namespace
from tests.support.accounts import Account, register
from tests.support.rpc import error_info, field_violations
from tests.support.waiting import eventually


def _auth(account: Account) -> tuple[tuple[str, str], ...]:
    return account.metadata


def _seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


async def _create(rpc: RpcWorld, team: RpcTeam, runtime: str = "python") -> sandbox_pb2.Sandbox:
    return await rpc.stub.CreateSandbox(
        sandbox_pb2.CreateSandboxRequest(
            project_id=team.project_id, sandbox=sandbox_pb2.Sandbox(runtime=runtime)
        ),
        metadata=_auth(team.editor),
        timeout=30,
    )


def _shell(sandbox_id: str, script: str) -> sandbox_pb2.ExecRequest:
    request = sandbox_pb2.ExecRequest(sandbox_id=sandbox_id)
    request.shell = script
    return request


async def _exec(
    rpc: RpcWorld, account: Account, request: sandbox_pb2.ExecRequest, seconds: float = 30
) -> list[sandbox_pb2.ExecEvent]:
    call = rpc.stub.Exec(request, metadata=_auth(account), timeout=seconds)
    return [event async for event in call]


async def test_create_exec_get_list_delete(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    sandbox = await _create(rpc, rpc_team)
    assert sandbox.state == sandbox_pb2.SANDBOX_STATE_RUNNING
    assert sandbox.runtime == "python"
    assert sandbox.image == rpc.settings.sandbox_python_image
    assert sandbox.limits.memory_bytes == 256 * 1024 * 1024
    assert sandbox.limits.exec_timeout.seconds == 30
    assert sandbox.creator_user_id == rpc_team.editor.user_id
    assert sandbox.HasField("start_duration")
    assert sandbox.expire_time.ToDatetime() > sandbox.create_time.ToDatetime()

    events = await _exec(
        rpc,
        rpc_team.editor,
        sandbox_pb2.ExecRequest(
            sandbox_id=sandbox.id,
            argv=["python3", "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
        ),
    )
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "started"
    assert kinds[-1] == "exit"
    assert b"".join(e.stdout for e in events) == b"out\n"
    assert b"".join(e.stderr for e in events) == b"err\n"
    assert events[0].started.sandbox_id == sandbox.id
    exit_event = events[-1].exit
    assert exit_event.exit_code == 0
    assert exit_event.reason == sandbox_pb2.EXIT_REASON_EXITED
    assert (exit_event.stdout_bytes, exit_event.stderr_bytes) == (4, 4)

    got = await rpc.stub.GetSandbox(
        sandbox_pb2.GetSandboxRequest(sandbox_id=sandbox.id), metadata=_auth(rpc_team.viewer)
    )
    assert got.last_active_time.ToDatetime() >= sandbox.last_active_time.ToDatetime()
    listed = await rpc.stub.ListSandboxes(
        sandbox_pb2.ListSandboxesRequest(project_id=rpc_team.project_id),
        metadata=_auth(rpc_team.viewer),
    )
    assert [s.id for s in listed.sandboxes] == [sandbox.id]
    await rpc.stub.DeleteSandbox(
        sandbox_pb2.DeleteSandboxRequest(sandbox_id=sandbox.id), metadata=_auth(rpc_team.editor)
    )
    gone = await rpc.stub.GetSandbox(
        sandbox_pb2.GetSandboxRequest(sandbox_id=sandbox.id), metadata=_auth(rpc_team.viewer)
    )
    assert gone.state == sandbox_pb2.SANDBOX_STATE_DELETED


async def test_list_runtimes(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    response = await rpc.stub.ListRuntimes(
        sandbox_pb2.ListRuntimesRequest(), metadata=_auth(rpc_team.viewer)
    )
    assert [r.name for r in response.runtimes] == ["node", "python"]
    python = response.runtimes[1]
    assert "python" in python.languages
    assert python.warm_pool_size == 2
    assert python.default_limits.pids == 50
    assert python.default_limits.output_limit_bytes == 1024 * 1024
    assert python.max_limits.memory_bytes >= python.default_limits.memory_bytes
    first = await rpc.stub.ListRuntimes(
        sandbox_pb2.ListRuntimesRequest(page_size=1), metadata=_auth(rpc_team.viewer)
    )
    assert [r.name for r in first.runtimes] == ["node"]
    second = await rpc.stub.ListRuntimes(
        sandbox_pb2.ListRuntimesRequest(page_size=1, page_token=first.next_page_token),
        metadata=_auth(rpc_team.viewer),
    )
    assert [r.name for r in second.runtimes] == ["python"]
    assert second.next_page_token == ""


async def test_errors_carry_reasons_and_field_violations(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await rpc.stub.CreateSandbox(
            sandbox_pb2.CreateSandboxRequest(
                project_id=rpc_team.project_id,
                sandbox=sandbox_pb2.Sandbox(
                    runtime="fortran", limits=sandbox_pb2.SandboxLimits(pids=100_000)
                ),
            ),
            metadata=_auth(rpc_team.editor),
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(failure.value)) == {"sandbox.runtime"}

    sandbox = await _create(rpc, rpc_team)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _exec(rpc, rpc_team.editor, sandbox_pb2.ExecRequest(sandbox_id=sandbox.id))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "argv" in field_violations(failure.value)

    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await rpc.stub.WriteFile(
            sandbox_pb2.WriteFileRequest(
                sandbox_id=sandbox.id, path="../../etc/passwd", content=b"root::0:0::/:/bin/sh"
            ),
            metadata=_auth(rpc_team.editor),
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(failure.value)) == {"path"}

    # A stranger cannot see it; a viewer cannot exec in it.
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _exec(
            rpc,
            rpc_team.stranger,
            _shell(sandbox.id, "true"),
        )
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(failure.value).reason == "SANDBOX_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await rpc.stub.GetSandbox(
            sandbox_pb2.GetSandboxRequest(sandbox_id=sandbox.id),
            metadata=_auth(rpc_team.stranger),
        )
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _exec(rpc, rpc_team.viewer, _shell(sandbox.id, "true"))
    assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # Paused: FAILED_PRECONDITION with the reason.
    await rpc.stub.PauseSandbox(
        sandbox_pb2.PauseSandboxRequest(sandbox_id=sandbox.id), metadata=_auth(rpc_team.editor)
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _exec(rpc, rpc_team.editor, _shell(sandbox.id, "true"))
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(failure.value).reason == "SANDBOX_PAUSED"
    resumed = await rpc.stub.ResumeSandbox(
        sandbox_pb2.ResumeSandboxRequest(sandbox_id=sandbox.id), metadata=_auth(rpc_team.editor)
    )
    assert resumed.state == sandbox_pb2.SANDBOX_STATE_RUNNING


async def test_client_cancel_kills_background_children(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    sandbox = await _create(rpc, rpc_team)
    call = rpc.stub.Exec(
        _shell(sandbox.id, "sleep 310 & sleep 311 & (sleep 312; echo late) & echo started; wait"),
        metadata=_auth(rpc_team.editor),
        timeout=60,
    )
    seen = b""
    async for event in call:
        seen += event.stdout
        if b"started" in seen:
            break
    call.cancel()

    async def nothing_left() -> bool:
        events = await _exec(
            rpc,
            rpc_team.editor,
            sandbox_pb2.ExecRequest(sandbox_id=sandbox.id, argv=["ps", "-eo", "args="]),
        )
        listing = b"".join(e.stdout for e in events)
        return b"sleep 31" not in listing

    await eventually(nothing_left, timeout=10)


async def test_deadline_ends_with_an_exit_event(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    sandbox = await _create(rpc, rpc_team)
    started = time.monotonic()
    events = await _exec(
        rpc,
        rpc_team.editor,
        _shell(sandbox.id, "echo begun; sleep 60"),
        seconds=2.5,
    )
    assert time.monotonic() - started < 2.5
    assert events[-1].WhichOneof("event") == "exit"
    assert events[-1].exit.reason == sandbox_pb2.EXIT_REASON_CANCELLED


async def test_timeout_from_the_request(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    sandbox = await _create(rpc, rpc_team)
    events = await _exec(
        rpc,
        rpc_team.editor,
        sandbox_pb2.ExecRequest(
            sandbox_id=sandbox.id,
            argv=["python3", "-c", "while True: pass"],
            timeout=_seconds(1.0),
        ),
    )
    exit_event = events[-1].exit
    assert exit_event.timed_out
    assert exit_event.reason == sandbox_pb2.EXIT_REASON_TIMEOUT
    assert exit_event.exit_code == 137
    assert exit_event.signal == 9


async def test_files_over_grpc(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    sandbox = await _create(rpc, rpc_team, runtime="node")
    written = await rpc.stub.WriteFile(
        sandbox_pb2.WriteFileRequest(
            sandbox_id=sandbox.id, path="app/index.js", content=b"console.log(6 * 7)\n"
        ),
        metadata=_auth(rpc_team.editor),
    )
    assert written.path == "/workspace/app/index.js"
    assert written.mode == 0o644
    listed = await rpc.stub.ListFiles(
        sandbox_pb2.ListFilesRequest(sandbox_id=sandbox.id, recursive=True),
        metadata=_auth(rpc_team.viewer),
    )
    assert [(f.path, f.is_dir) for f in listed.files] == [
        ("/workspace/app", True),
        ("/workspace/app/index.js", False),
    ]
    read = await rpc.stub.ReadFile(
        sandbox_pb2.ReadFileRequest(sandbox_id=sandbox.id, path="/workspace/app/index.js"),
        metadata=_auth(rpc_team.viewer),
    )
    assert read.content == b"console.log(6 * 7)\n"
    assert read.file.size_bytes == 19
    events = await _exec(
        rpc, rpc_team.editor, sandbox_pb2.ExecRequest(sandbox_id=sandbox.id, argv=["node", "app"])
    )
    assert b"".join(e.stdout for e in events) == b"42\n"
    await rpc.stub.DeleteFile(
        sandbox_pb2.DeleteFileRequest(sandbox_id=sandbox.id, path="app", recursive=True),
        metadata=_auth(rpc_team.editor),
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await rpc.stub.ReadFile(
            sandbox_pb2.ReadFileRequest(sandbox_id=sandbox.id, path="app/index.js"),
            metadata=_auth(rpc_team.viewer),
        )
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


async def test_run_code(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    call = rpc.stub.RunCode(
        sandbox_pb2.RunCodeRequest(
            project_id=rpc_team.project_id,
            language="python",
            code="import sys\nprint(sys.stdin.read().upper())",
            stdin=b"shout",
        ),
        metadata=_auth(rpc_team.editor),
        timeout=30,
    )
    events = [event async for event in call]
    assert events[0].WhichOneof("event") == "started"
    assert b"".join(e.stdout for e in events) == b"SHOUT\n"
    assert events[-1].exit.exit_code == 0
    sandbox_id = events[0].started.sandbox_id

    async def deleted() -> bool:
        got = await rpc.stub.GetSandbox(
            sandbox_pb2.GetSandboxRequest(sandbox_id=sandbox_id), metadata=_auth(rpc_team.viewer)
        )
        return got.state == sandbox_pb2.SANDBOX_STATE_DELETED

    await eventually(deleted, timeout=10)


def _sse_events(body: bytes) -> list[dict[str, Any]]:
    frames = [frame for frame in body.split(b"\n\n") if frame.strip()]
    events = []
    for frame in frames:
        assert frame.startswith(b"data: "), frame
        events.append(json.loads(frame[len(b"data: ") :]))
    return events


async def test_exec_through_envoy_streams_sse_ending_with_exit(
    rpc: RpcWorld, rpc_team: RpcTeam, rpc_envoy: EnvoyProcess
) -> None:
    sandbox = await _create(rpc, rpc_team)
    headers = {"authorization": f"Bearer {rpc_team.editor.access_token}"}
    arrivals: list[float] = []
    body = b""
    async with aiohttp.ClientSession(base_url=rpc_envoy.base_url) as http:
        started = time.monotonic()
        async with http.post(
            f"/v1/sandboxes/{sandbox.id}:exec",
            json={"shell": "echo one; sleep 0.7; echo two >&2; exit 4"},
            headers=headers,
        ) as response:
            assert response.status == 200
            assert response.content_type == "text/event-stream"
            async for chunk in response.content.iter_any():
                body += chunk
                arrivals.append(time.monotonic() - started)
        # A request the server refuses is a plain HTTP error, before any event.
        async with http.post(
            f"/v1/sandboxes/{sandbox.id}:exec", json={}, headers=headers
        ) as refused:
            assert refused.status == 400
    events = _sse_events(body)
    kinds = [next(k for k in ("started", "stdout", "stderr", "exit") if k in e) for e in events]
    assert kinds == ["started", "stdout", "stderr", "exit"]
    assert [int(e["seq"]) for e in events] == [1, 2, 3, 4]
    assert base64.b64decode(events[1]["stdout"]) == b"one\n"
    assert base64.b64decode(events[2]["stderr"]) == b"two\n"
    assert events[3]["exit"]["exitCode"] == 4
    assert events[3]["exit"]["reason"] == "EXIT_REASON_EXITED"
    # Streamed as produced: the first output came well before the end.
    assert arrivals[-1] - arrivals[0] >= 0.5


async def test_health_reports_not_serving_without_docker(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = await postgres.ensure_database("forge_sandbox_offline")
    settings = sandbox_settings(
        url,
        tmp_path,
        sandbox_namespace=namespace("offline"),
        docker_host="unix:///nonexistent/docker.sock",
        sandbox_backend_retry_seconds=3600,
    )
    app = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def not_serving() -> bool:
                answer = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
                return bool(answer.status == health_pb2.HealthCheckResponse.NOT_SERVING)

            await eventually(not_serving, timeout=5)
            overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert overall.status == health_pb2.HealthCheckResponse.SERVING
            await register(channel)  # the first account is an admin: take it
            account = await register(channel)
            stub = sandbox_pb2_grpc.SandboxServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.ListRuntimes(
                    sandbox_pb2.ListRuntimesRequest(), metadata=account.metadata
                )
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(failure.value).reason == BACKEND_UNAVAILABLE
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.Exec(
                    _shell(str(uuid.uuid4()), "true"),
                    metadata=account.metadata,
                ).read()
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.stop(grace=0)


async def test_list_sandboxes_pages_with_tokens(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    made = [await _create(rpc, rpc_team) for _ in range(3)]
    seen: list[str] = []
    token = ""
    while True:
        page = await rpc.stub.ListSandboxes(
            sandbox_pb2.ListSandboxesRequest(
                project_id=rpc_team.project_id, page_size=2, page_token=token
            ),
            metadata=_auth(rpc_team.viewer),
        )
        seen += [s.id for s in page.sandboxes]
        token = page.next_page_token
        if not token:
            break
    assert seen == [s.id for s in reversed(made)]
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await rpc.stub.ListSandboxes(
            sandbox_pb2.ListSandboxesRequest(
                project_id=rpc_team.project_id,
                page_token=token or "forged.token",
                state=sandbox_pb2.SANDBOX_STATE_PAUSED,
            ),
            metadata=_auth(rpc_team.viewer),
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
