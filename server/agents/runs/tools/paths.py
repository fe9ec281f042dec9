"""Paths the model names, confined to /workspace (the sandbox port checks again, and also
refuses symbolic links leading out)."""

from __future__ import annotations

from server.agents.runs.tools.base import ToolInputError

WORKSPACE = "/workspace"


def workspace_path(path: str, field: str = "path") -> str:
    """The absolute path for `path` (relative to /workspace or absolute under it)."""
    if "\x00" in path:
        raise ToolInputError(f"{field}: must not contain NUL characters")
    if path.startswith("/"):
        if path != WORKSPACE and not path.startswith(WORKSPACE + "/"):
            raise ToolInputError(
                f"{field}: {path!r} is outside {WORKSPACE}; give a path under {WORKSPACE} "
                "or relative to it"
            )
        path = path[len(WORKSPACE) :]
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ToolInputError(f"{field}: must not contain '..'")
    return "/".join([WORKSPACE, *parts])
