"""`finish`: ends the run with the final answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.agents.runs.tools.base import Tool, ToolContext, ToolOutcome


class FinishTool(Tool):
    name = "finish"
    description = (
        "Ends the run: call it once the goal is reached (or cannot be), with the final "
        "answer for the user: what was done, where the results are, and anything left open."
    )
    may_write = False

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"answer": {"type": "string", "minLength": 1}},
            "required": ["answer"],
            "additionalProperties": False,
        }

    async def run(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolOutcome:
        return ToolOutcome("finished", final_answer=arguments["answer"])
