"""`save_artifact`: saves a sandbox file, a sandbox directory (as a tree artifact: a
multi-file project) or a text as a project artifact (a new version when the project has an
artifact of that filename, or a tree of that name)."""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Mapping
from typing import Any

from server.agents.runs.events import ArtifactSaved
from server.agents.runs.tools.base import Tool, ToolContext, ToolInputError, ToolOutcome
from server.agents.runs.tools.paths import workspace_path
from server.core.errors import InvalidArgument
from server.core.ports import IS_A_DIRECTORY


class SaveArtifactTool(Tool):
    name = "save_artifact"
    description = (
        "Saves a result as an artifact of the project, where the user keeps it: either a "
        "file of the sandbox (`path`; its name becomes the artifact's filename unless "
        "`filename` is given), a directory of the sandbox (`path`: all its files, saved as "
        "one multi-file project named by the directory unless `filename` is given) or a "
        "text (`filename` and `content`). Saving a filename the project already has adds a "
        "new version of that artifact."
    )
    may_write = True

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "minLength": 1,
                    "description": "a sandbox file or directory",
                },
                "filename": {
                    "type": "string",
                    "minLength": 1,
                    "description": "the artifact's filename, e.g. parser.py",
                },
                "content": {"type": "string", "description": "the text to save"},
                "title": {"type": "string", "description": "a short title (optional)"},
            },
            "additionalProperties": False,
        }

    def check(self, arguments: Mapping[str, Any]) -> None:
        has_path, has_content = "path" in arguments, "content" in arguments
        if has_path == has_content:
            raise ToolInputError(
                "give either path (a sandbox file or directory) or content, not both"
            )
        if has_path:
            if posixpath.basename(workspace_path(arguments["path"])) == "":
                raise ToolInputError("path: must name a file or directory")
        elif "filename" not in arguments:
            raise ToolInputError("content needs a filename")
        filename = arguments.get("filename", "")
        if "/" in filename:
            raise ToolInputError("filename: a name without directories, e.g. report.md")

    async def run(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolOutcome:
        if "path" in arguments:
            path = workspace_path(arguments["path"])
            sandbox = ctx.ports.sandbox.get()
            sandbox_id = await ctx.sandbox()
            try:
                content = await sandbox.read_file(ctx.caller, sandbox_id, path)
            except InvalidArgument as error:
                if error.reason != IS_A_DIRECTORY:
                    raise
                return await self._save_directory(ctx, arguments, sandbox_id, path)
            filename = arguments.get("filename") or posixpath.basename(path)
        else:
            content = arguments["content"].encode()
            filename = arguments["filename"]
        saved = await ctx.ports.artifacts.get().save_from_run(
            ctx.caller,
            ctx.project_id,
            ctx.run_id,
            filename,
            content,
            arguments.get("title", ""),
        )
        await ctx.emit(ArtifactSaved(saved.message))
        what = "Saved" if saved.created else "Saved a new version of"
        return ToolOutcome(
            f"{what} the artifact {filename} (id {saved.artifact_id}, version {saved.version})."
        )

    async def _save_directory(
        self, ctx: ToolContext, arguments: Mapping[str, Any], sandbox_id: uuid.UUID, path: str
    ) -> ToolOutcome:
        files = await ctx.ports.sandbox.get().read_tree(
            ctx.caller,
            ctx.project_id,
            sandbox_id,
            path,
            max_files=ctx.settings.max_tree_files,
            max_bytes=ctx.settings.max_upload_bytes,
        )
        name = arguments.get("filename") or posixpath.basename(path)
        saved = await ctx.ports.artifacts.get().save_tree_from_run(
            ctx.caller, ctx.project_id, ctx.run_id, name, files, arguments.get("title", "")
        )
        await ctx.emit(ArtifactSaved(saved.message))
        what = "Saved" if saved.created else "Saved a new version of"
        return ToolOutcome(
            f"{what} the project {name} ({len(files)} files; artifact id {saved.artifact_id}, "
            f"version {saved.version})."
        )
