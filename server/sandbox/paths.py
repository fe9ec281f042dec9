"""Confining user-given paths to /workspace: the lexical rules (this module) and the check that
no existing symlink on the way leads out (files.py, which asks the backend)."""

from __future__ import annotations

from server.core.errors import FieldViolation, InvalidArgument, Violations
from server.sandbox.backend import WORKSPACE

MAX_PATH_LENGTH = 4096
MAX_COMPONENT_LENGTH = 255


def is_inside_workspace(path: str, *, allow_root: bool = True) -> bool:
    """Whether an absolute, normalized container path is /workspace or below it."""
    if path == WORKSPACE:
        return allow_root
    return path.startswith(WORKSPACE + "/")


def confine(path: str, field: str, *, allow_root: bool = False) -> str:
    """The absolute container path for `path` (relative to /workspace, or absolute under it).

    Refuses, as INVALID_ARGUMENT on `field`: an empty path (unless `allow_root`, where it
    means /workspace itself), NUL bytes, `..` components, and absolute paths elsewhere.
    """
    violations = Violations()
    if "\x00" in path:
        violations.add(field, "must not contain NUL characters")
    elif len(path) > MAX_PATH_LENGTH:
        violations.add(field, f"must be at most {MAX_PATH_LENGTH} characters")
    violations.raise_if_any()

    if path.startswith("/"):
        if path != WORKSPACE and not path.startswith(WORKSPACE + "/"):
            raise _invalid(field, f"must be under {WORKSPACE} (or relative to it)")
        relative = path[len(WORKSPACE) :]
    else:
        relative = path
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _invalid(field, "must not contain '..'")
    if any(len(part) > MAX_COMPONENT_LENGTH for part in parts):
        raise _invalid(field, f"path components must be at most {MAX_COMPONENT_LENGTH} characters")
    if not parts and not allow_root:
        raise _invalid(field, "must name a file or directory under /workspace")
    return "/".join([WORKSPACE, *parts])


def ancestors(path: str) -> list[str]:
    """The paths from the first component below /workspace down to `path` itself."""
    relative = path[len(WORKSPACE) :].strip("/")
    if not relative:
        return []
    parts = relative.split("/")
    return ["/".join([WORKSPACE, *parts[: depth + 1]]) for depth in range(len(parts))]


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument.of([FieldViolation(field, description)])
