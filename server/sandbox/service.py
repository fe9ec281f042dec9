"""SandboxService servicer: protos in, calls on the sandbox parts, protos out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from google.protobuf import empty_pb2

from server.core.context import current_call
from server.core.errors import FieldViolation, InvalidArgument
from server.core.pagination import PageTokens
from server.core.streaming import server_stream
from server.sandbox import convert
from server.sandbox.artifact_code import ArtifactCode
from server.sandbox.cancel import ExecutionCancels
from server.sandbox.executions import Execution
from server.sandbox.failures import execution_lost
from server.sandbox.file_calls import FileCalls
from server.sandbox.launcher import ExecLauncher, ExecParams, RunCodeParams
from server.sandbox.lifecycle import SandboxLifecycle

Context = grpc.aio.ServicerContext[Any, Any]

SERVICE_NAME = "forge.sandbox.v1.SandboxService"
# A deadline further away than this is treated as none.
_NO_DEADLINE_SECONDS = 365 * 24 * 3600.0


def _deadline(context: Context) -> float | None:
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_SECONDS:
        return None
    return asyncio.get_running_loop().time() + remaining


def exec_stream(
    execution: Execution,
) -> AbstractAsyncContextManager[AsyncGenerator[sandbox_pb2.ExecEvent, None]]:
    """The execution's events as numbered ExecEvents; a failure after the start becomes an
    in-band `error` event (SANDBOX_EXECUTION_LOST for one of ours), then the call's status.
    Leaving the block early kills and records the execution at once."""
    return server_stream(
        execution.events(), convert.exec_event_to_proto, convert.error_event, lost=execution_lost
    )


class SandboxService(sandbox_pb2_grpc.SandboxServiceServicer):
    def __init__(
        self,
        lifecycle: SandboxLifecycle,
        executions: ExecLauncher,
        files: FileCalls,
        page_tokens: PageTokens,
        cancels: ExecutionCancels,
        artifact_code: ArtifactCode,
    ) -> None:
        self._cancels = cancels
        self._artifact_code = artifact_code
        self._lifecycle = lifecycle
        self._executions = executions
        self._files = files
        self._pages = page_tokens

    async def ListRuntimes(
        self, request: sandbox_pb2.ListRuntimesRequest, context: Context
    ) -> sandbox_pb2.ListRuntimesResponse:
        current_call().require_caller()
        page = self._pages.page("sandbox_runtimes", request.page_size, request.page_token)
        result = await self._lifecycle.list_runtimes(page)
        return sandbox_pb2.ListRuntimesResponse(
            runtimes=[convert.runtime_to_proto(view) for view in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def CreateSandbox(
        self, request: sandbox_pb2.CreateSandboxRequest, context: Context
    ) -> sandbox_pb2.Sandbox:
        caller = current_call().require_caller()
        if not request.HasField("sandbox"):
            raise InvalidArgument.of([FieldViolation("sandbox", "is required")])
        view = await self._lifecycle.create(
            caller,
            request.project_id,
            request.sandbox.runtime,
            convert.limit_request(request.sandbox.limits),
        )
        return convert.sandbox_to_proto(view)

    async def GetSandbox(
        self, request: sandbox_pb2.GetSandboxRequest, context: Context
    ) -> sandbox_pb2.Sandbox:
        caller = current_call().require_caller()
        return convert.sandbox_to_proto(await self._lifecycle.get(caller, request.sandbox_id))

    async def ListSandboxes(
        self, request: sandbox_pb2.ListSandboxesRequest, context: Context
    ) -> sandbox_pb2.ListSandboxesResponse:
        caller = current_call().require_caller()
        state = convert.STATE_FROM_PROTO.get(request.state)
        if request.state and state is None:
            raise InvalidArgument.of([FieldViolation("state", "is not a sandbox state")])
        filters = {"project_id": request.project_id, "state": int(request.state)}
        page = self._pages.page("sandboxes", request.page_size, request.page_token, filters)
        result = await self._lifecycle.list(caller, request.project_id, state, page)
        return sandbox_pb2.ListSandboxesResponse(
            sandboxes=[convert.sandbox_to_proto(view) for view in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def PauseSandbox(
        self, request: sandbox_pb2.PauseSandboxRequest, context: Context
    ) -> sandbox_pb2.Sandbox:
        caller = current_call().require_caller()
        return convert.sandbox_to_proto(await self._lifecycle.pause(caller, request.sandbox_id))

    async def ResumeSandbox(
        self, request: sandbox_pb2.ResumeSandboxRequest, context: Context
    ) -> sandbox_pb2.Sandbox:
        caller = current_call().require_caller()
        return convert.sandbox_to_proto(await self._lifecycle.resume(caller, request.sandbox_id))

    async def CancelExecution(
        self, request: sandbox_pb2.CancelExecutionRequest, context: Context
    ) -> empty_pb2.Empty:
        caller = current_call().require_caller()
        await self._cancels.cancel(caller, request.sandbox_id, request.execution_id)
        return empty_pb2.Empty()

    async def DeleteSandbox(
        self, request: sandbox_pb2.DeleteSandboxRequest, context: Context
    ) -> empty_pb2.Empty:
        caller = current_call().require_caller()
        await self._lifecycle.delete(caller, request.sandbox_id)
        return empty_pb2.Empty()

    async def Exec(
        self, request: sandbox_pb2.ExecRequest, context: Context
    ) -> AsyncIterator[sandbox_pb2.ExecEvent]:
        caller = current_call().require_caller()
        params = ExecParams(
            argv=list(request.argv),
            shell=request.shell,
            stdin=request.stdin,
            env=dict(request.env),
            timeout=convert.optional_duration(request.timeout, request.HasField("timeout")),
            idle_timeout=convert.optional_duration(
                request.idle_timeout, request.HasField("idle_timeout")
            ),
            working_dir=request.working_dir,
            background=request.background,
        )
        execution = await self._executions.start_exec(
            caller, request.sandbox_id, params, _deadline(context)
        )
        async with exec_stream(execution) as events:
            async for event in events:
                yield event

    async def RunCode(
        self, request: sandbox_pb2.RunCodeRequest, context: Context
    ) -> AsyncIterator[sandbox_pb2.ExecEvent]:
        caller = current_call().require_caller()
        params = RunCodeParams(
            language=request.language,
            code=request.code,
            stdin=request.stdin,
            env=dict(request.env),
            timeout=convert.optional_duration(request.timeout, request.HasField("timeout")),
        )
        if request.artifact_id:
            params = await self._artifact_code.params(
                caller, request.project_id, request.artifact_id, request.artifact_version, params
            )
        execution = await self._executions.start_run_code(
            caller, request.project_id, params, _deadline(context)
        )
        async with exec_stream(execution) as events:
            async for event in events:
                yield event

    async def WriteFile(
        self, request: sandbox_pb2.WriteFileRequest, context: Context
    ) -> sandbox_pb2.FileEntry:
        caller = current_call().require_caller()
        info = await self._files.write(
            caller, request.sandbox_id, request.path, request.content, request.mode
        )
        return convert.file_to_proto(info)

    async def ReadFile(
        self, request: sandbox_pb2.ReadFileRequest, context: Context
    ) -> sandbox_pb2.ReadFileResponse:
        caller = current_call().require_caller()
        info, content = await self._files.read(caller, request.sandbox_id, request.path)
        return sandbox_pb2.ReadFileResponse(file=convert.file_to_proto(info), content=content)

    async def ListFiles(
        self, request: sandbox_pb2.ListFilesRequest, context: Context
    ) -> sandbox_pb2.ListFilesResponse:
        caller = current_call().require_caller()
        filters = {
            "sandbox_id": request.sandbox_id,
            "path": request.path,
            "recursive": request.recursive,
        }
        page = self._pages.page("sandbox_files", request.page_size, request.page_token, filters)
        result = await self._files.list(
            caller, request.sandbox_id, request.path, request.recursive, page
        )
        return sandbox_pb2.ListFilesResponse(
            files=[convert.file_to_proto(info) for info in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def DeleteFile(
        self, request: sandbox_pb2.DeleteFileRequest, context: Context
    ) -> empty_pb2.Empty:
        caller = current_call().require_caller()
        await self._files.delete(caller, request.sandbox_id, request.path, request.recursive)
        return empty_pb2.Empty()
