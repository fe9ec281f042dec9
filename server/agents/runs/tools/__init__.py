"""The tools agents call in runs (see registry.py): `bash`, `editor`, `save_artifact`,
`update_task` and `finish`. They act only through the ports in `ToolContext.ports`."""

from server.agents.runs.tools.base import (
    Tool,
    ToolContext,
    ToolDescription,
    ToolInputError,
    ToolOutcome,
)
from server.agents.runs.tools.registry import TOOL_NAMES, ToolRegistry, default_tools

__all__ = [
    "TOOL_NAMES",
    "Tool",
    "ToolContext",
    "ToolDescription",
    "ToolInputError",
    "ToolOutcome",
    "ToolRegistry",
    "default_tools",
]
