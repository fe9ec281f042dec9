"""`editor`: views and edits text files in the run's sandbox, shaped like Anthropic's
text-editor tool (`view`, `create`, `str_replace`, `insert`), confined to /workspace."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Mapping
from contextlib import aclosing
from datetime import timedelta
from typing import Any

from server.agents.runs.tools import editor_text
from server.agents.runs.tools.base import Tool, ToolContext, ToolInputError, ToolOutcome
from server.agents.runs.tools.editor_text import EditError
from server.agents.runs.tools.output import OutputCollector, clip
from server.agents.runs.tools.paths import WORKSPACE, workspace_path
from server.core.errors import InvalidArgument
from server.core.ports import ExecChunk, SandboxPort

COMMANDS = ("view", "create", "str_replace", "insert")
WRITING_COMMANDS = frozenset({"create", "str_replace", "insert"})
_NEEDS = {
    "create": ("file_text",),
    "str_replace": ("old_str",),
    "insert": ("insert_line", "new_str"),
}
LISTING_TIMEOUT = timedelta(seconds=20)
LISTING_LIMIT = 500


class EditorTool(Tool):
    name = "editor"
    description = (
        "Views and edits files in the run's sandbox under /workspace (paths relative to "
        "/workspace or absolute under it). Commands: `view` shows a file with line numbers "
        "(optionally `view_range` [start, end], end -1 for the end of the file) or lists a "
        "directory two levels deep; `create` writes `file_text` to a file (replacing it if "
        "it exists, creating parent directories); `str_replace` replaces `old_str`, which "
        "must occur exactly once in the file, with `new_str`; `insert` inserts `new_str` "
        "after line `insert_line` (0 inserts at the top)."
    )
    may_write = True

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": list(COMMANDS)},
                "path": {"type": "string", "minLength": 1, "description": "e.g. src/app.py"},
                "file_text": {"type": "string", "description": "create: the whole file"},
                "old_str": {
                    "type": "string",
                    "minLength": 1,
                    "description": "str_replace: the exact text to replace (unique)",
                },
                "new_str": {
                    "type": "string",
                    "description": "str_replace: the replacement (default empty); insert: "
                    "the text to insert",
                },
                "insert_line": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "insert: the line after which to insert (0: the top)",
                },
                "view_range": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "minItems": 2,
                    "maxItems": 2,
                    "description": "view: [first line, last line], last -1 for the end",
                },
            },
            "required": ["command", "path"],
            "additionalProperties": False,
        }

    def check(self, arguments: Mapping[str, Any]) -> None:
        command = arguments["command"]
        workspace_path(arguments["path"])
        missing = [name for name in _NEEDS.get(command, ()) if name not in arguments]
        if missing:
            raise ToolInputError(f"{command} needs {' and '.join(missing)}")
        view_range = arguments.get("view_range")
        if view_range is not None:
            if command != "view":
                raise ToolInputError("view_range is only for the view command")
            start, end = view_range
            if start < 1:
                raise ToolInputError("view_range: lines are numbered from 1")
            if end != -1 and end < start:
                raise ToolInputError("view_range: the end must be -1 or at least the start")

    def writes(self, arguments: Mapping[str, Any]) -> bool:
        return arguments.get("command") in WRITING_COMMANDS

    async def run(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolOutcome:
        port = ctx.ports.sandbox.get()
        sandbox_id = await ctx.sandbox()
        path = workspace_path(arguments["path"])
        limit = ctx.settings.run_tool_output_chars
        files = _Files(port, ctx, sandbox_id)
        try:
            match arguments["command"]:
                case "view":
                    return await _view(files, path, arguments.get("view_range"), limit)
                case "create":
                    text = arguments["file_text"]
                    await files.write(path, text)
                    lines = len(editor_text.lines_of(text))
                    return ToolOutcome(f"Wrote {path} ({lines} lines, {len(text)} characters).")
                case "str_replace":
                    text, line = editor_text.replace_once(
                        await files.read(path),
                        arguments["old_str"],
                        arguments.get("new_str", ""),
                        path,
                    )
                    await files.write(path, text)
                    last = line + arguments.get("new_str", "").count("\n")
                    return _edited(path, text, line, last, limit)
                case _:
                    line = arguments["insert_line"]
                    new = arguments["new_str"]
                    text = editor_text.insert_after(await files.read(path), line, new, path)
                    await files.write(path, text)
                    added = max(len(editor_text.lines_of(new)), 1)
                    return _edited(path, text, line + 1, line + added, limit)
        except EditError as error:
            return ToolOutcome(error.message, is_error=True)


class _Files:
    """The sandbox's files as text."""

    def __init__(self, port: SandboxPort, ctx: ToolContext, sandbox_id: uuid.UUID) -> None:
        self.port, self.ctx, self.sandbox_id = port, ctx, sandbox_id

    async def read(self, path: str) -> str:
        data = await self.port.read_file(self.ctx.caller, self.sandbox_id, path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise EditError(f"{path} is not a UTF-8 text file; the editor edits text") from None

    async def write(self, path: str, text: str) -> None:
        await self.port.write_file(self.ctx.caller, self.sandbox_id, path, text.encode())

    async def listing(self, path: str) -> str:
        quoted = shlex.quote(path)
        command = (
            f"find {quoted} -mindepth 1 -maxdepth 2 -not -path '*/.*' "
            f"\\( -type d -printf '%p/\\n' -o -printf '%p\\n' \\) | sort | head -n {LISTING_LIMIT}"
        )
        output = OutputCollector(LISTING_LIMIT * 100)
        events = self.port.exec(self.ctx.caller, self.sandbox_id, command, LISTING_TIMEOUT)
        async with aclosing(events) as stream:
            async for event in stream:
                if isinstance(event, ExecChunk) and event.stream == "stdout":
                    output.add(event.data)
        return output.text()


async def _view(files: _Files, path: str, view_range: list[int] | None, limit: int) -> ToolOutcome:
    try:
        if path == WORKSPACE:
            return await _listing(files, path, view_range, limit)
        text = await files.read(path)
    except InvalidArgument as error:
        # The sandbox reads files only; a directory is listed instead.
        if "is a directory" not in error.message:
            raise
        return await _listing(files, path, view_range, limit)
    if not text:
        return ToolOutcome(f"{path} is empty.")
    hint = "; view a smaller view_range"
    return ToolOutcome(clip(editor_text.view(text, view_range), limit, hint))


async def _listing(
    files: _Files, path: str, view_range: list[int] | None, limit: int
) -> ToolOutcome:
    if view_range is not None:
        raise EditError(f"{path} is a directory; view_range is only for files")
    entries = (await files.listing(path)).strip()
    return ToolOutcome(
        f"Files and directories in {path}, two levels deep (hidden ones left out):\n"
        + clip(entries or "(empty)", limit)
    )


def _edited(path: str, text: str, first: int, last: int, limit: int) -> ToolOutcome:
    shown = clip(editor_text.snippet(text, first, last), limit)
    return ToolOutcome(
        f"Edited {path}. The lines around the change:\n{shown}\n"
        "Check that the change is as intended; edit again if not."
    )
