"""ListRunTools, as a mixin of AgentService.

The servicer it is mixed into sets `self._tool_registry` (the run `ToolRegistry`) in its
constructor."""

from __future__ import annotations

import json
from typing import Any

import grpc
from forge.agents.v1 import agents_pb2

from server.agents.runs.tools import ToolDescription, ToolRegistry
from server.core.context import current_call

Context = grpc.aio.ServicerContext[Any, Any]


class ToolRpcs:
    _tool_registry: ToolRegistry

    async def ListRunTools(
        self, request: agents_pb2.ListRunToolsRequest, context: Context
    ) -> agents_pb2.ListRunToolsResponse:
        current_call().require_caller()
        return agents_pb2.ListRunToolsResponse(
            tools=[_tool_to_proto(tool) for tool in self._tool_registry.describe()]
        )


def _tool_to_proto(tool: ToolDescription) -> agents_pb2.RunTool:
    return agents_pb2.RunTool(
        name=tool.name,
        description=tool.description,
        input_schema=json.dumps(tool.input_schema, sort_keys=True),
        writes=tool.writes,
    )
