"""The run tools by name: their specs for the model, input validation (JSON Schema, then
each tool's own checks) and execution.

Bad input raises ToolInputError (the loop shows the model an error result); a tool's own
failure — a port's ForgeError, a non-zero exit, no unique match — is an error outcome;
only bugs raise anything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from server.agents.runs.tools.artifact import SaveArtifactTool
from server.agents.runs.tools.base import (
    Tool,
    ToolContext,
    ToolDescription,
    ToolInputError,
    ToolOutcome,
)
from server.agents.runs.tools.bash import BashTool
from server.agents.runs.tools.editor import EditorTool
from server.agents.runs.tools.finish import FinishTool
from server.agents.runs.tools.task import UpdateTaskTool
from server.config import Settings
from server.core.errors import ForgeError
from server.llm import ToolSpec

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

MAX_REPORTED_ERRORS = 5
MAX_ERROR_CHARS = 300


TOOL_NAMES = (
    BashTool.name,
    EditorTool.name,
    SaveArtifactTool.name,
    UpdateTaskTool.name,
    FinishTool.name,
)
"""The names of the default tools, in their order (what agent profiles may list)."""


def default_tools(settings: Settings) -> list[Tool]:
    return [BashTool(settings), EditorTool(), SaveArtifactTool(), UpdateTaskTool(), FinishTool()]


class ToolRegistry:
    def __init__(self, settings: Settings, tools: Sequence[Tool] | None = None) -> None:
        chosen = list(tools) if tools is not None else default_tools(settings)
        self._tools = {tool.name: tool for tool in chosen}
        self._validators: dict[str, Draft202012Validator] = {}
        self.names: tuple[str, ...] = tuple(self._tools)

    def specs(self, names: Sequence[str]) -> list[ToolSpec]:
        """The specs of the named tools, in the order given (unknown names are skipped)."""
        return [
            ToolSpec(tool.name, tool.description, tool.schema())
            for tool in (self._tools.get(name) for name in names)
            if tool is not None
        ]

    def describe(self) -> list[ToolDescription]:
        return [
            ToolDescription(tool.name, tool.description, tool.schema(), tool.may_write)
            for tool in self._tools.values()
        ]

    def parse(self, name: str, arguments_json: str) -> dict[str, Any]:
        """The call's arguments, checked; ToolInputError says what to fix."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolInputError(
                f"there is no tool named {name!r}; the tools are: {', '.join(self.names)}"
            )
        try:
            arguments = json.loads(arguments_json) if arguments_json.strip() else {}
        except json.JSONDecodeError as error:
            raise ToolInputError(f"the input of {name} is not valid JSON: {error}") from None
        if not isinstance(arguments, dict):
            raise ToolInputError(f"the input of {name} must be a JSON object")
        errors = sorted(
            self._validator(tool).iter_errors(arguments),
            key=lambda error: (list(map(str, error.absolute_path)), error.message),
        )
        if errors:
            problems = "; ".join(_describe(error) for error in errors[:MAX_REPORTED_ERRORS])
            more = len(errors) - MAX_REPORTED_ERRORS
            raise ToolInputError(
                f"invalid input for {name}: {problems}"
                + (f" (and {more} more problems)" if more > 0 else "")
            )
        try:
            tool.check(arguments)
        except ToolInputError as error:
            raise ToolInputError(f"invalid input for {name}: {error.message}") from None
        return arguments

    def _validator(self, tool: Tool) -> Draft202012Validator:
        """Built at the first call of `tool`: jsonschema (~3 MB) is imported only by servers
        that run agents (tests/test_lazy_imports.py)."""
        validator = self._validators.get(tool.name)
        if validator is None:
            from jsonschema import Draft202012Validator

            validator = self._validators[tool.name] = Draft202012Validator(tool.schema())
        return validator

    def writes(self, name: str, arguments: Mapping[str, Any]) -> bool:
        return self._tools[name].writes(arguments)

    async def run(self, ctx: ToolContext, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        try:
            return await self._tools[name].run(ctx, arguments)
        except ToolInputError as error:
            return ToolOutcome(error.message, is_error=True)
        except ForgeError as error:
            return ToolOutcome(f"{name} failed ({error.reason}): {error.message}", is_error=True)


def _describe(error: ValidationError) -> str:
    where = "/".join(str(part) for part in error.absolute_path) or "input"
    message = error.message
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    return f"{where}: {message}"
