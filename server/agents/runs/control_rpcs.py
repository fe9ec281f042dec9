"""AgentService's RPCs that start and steer runs: StartRun, CancelRun, ApproveToolCall,
SendRunMessage (a mixin of the servicer; it sets `_run_starts` and `_run_control`)."""

from __future__ import annotations

from typing import Any

import grpc
from forge.agents.v1 import agents_pb2

from server.agents.runs import convert
from server.agents.runs.control import RunControl
from server.agents.runs.starts import RunDraft, RunStarts
from server.core.context import current_call
from server.core.errors import FieldViolation, InvalidArgument
from server.core.timestamps import to_timedelta

Context = grpc.aio.ServicerContext[Any, Any]


def run_draft(request: agents_pb2.StartRunRequest) -> RunDraft:
    mode = convert.APPROVAL_MODES_FROM_PROTO.get(request.approval_mode)
    if mode is None:
        raise InvalidArgument.of([FieldViolation("approval_mode", "is not a known mode")])
    return RunDraft(
        project_id=request.project_id,
        agent_id=request.agent_id,
        goal=request.goal,
        task_id=request.task_id,
        model=request.model,
        max_steps=request.max_steps,
        sandbox_id=request.sandbox_id,
        approval_mode=mode,
        token_budget=request.token_budget,
        time_limit=to_timedelta(request.time_limit) if request.HasField("time_limit") else None,
        conversation_id=request.conversation_id,
    )


class ControlRpcs:
    _run_starts: RunStarts
    _run_control: RunControl

    async def StartRun(
        self, request: agents_pb2.StartRunRequest, context: Context
    ) -> agents_pb2.Run:
        caller = current_call().require_caller()
        run = await self._run_starts.start(caller, run_draft(request))
        return convert.run_to_proto(run)

    async def CancelRun(
        self, request: agents_pb2.CancelRunRequest, context: Context
    ) -> agents_pb2.Run:
        caller = current_call().require_caller()
        return convert.run_to_proto(await self._run_control.cancel(caller, request.run_id))

    async def ApproveToolCall(
        self, request: agents_pb2.ApproveToolCallRequest, context: Context
    ) -> agents_pb2.Run:
        caller = current_call().require_caller()
        run = await self._run_control.approve(
            caller, request.run_id, request.tool_call_id, request.approve, request.reason
        )
        return convert.run_to_proto(run)

    async def SendRunMessage(
        self, request: agents_pb2.SendRunMessageRequest, context: Context
    ) -> agents_pb2.Run:
        caller = current_call().require_caller()
        run = await self._run_control.send_message(caller, request.run_id, request.content)
        return convert.run_to_proto(run)
