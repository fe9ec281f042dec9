"""Input rules for projects and tasks. Each check adds a field violation; callers raise them
all at once."""

from __future__ import annotations

import re
import uuid

from server.core.errors import Violations
from server.core.ids import parse_id
from server.projects.model import ProjectFields, TaskFields

NAME_MAX = 100
PROJECT_DESCRIPTION_MAX = 2000
REPOSITORY_URL_MAX = 500
TITLE_MAX = 200
TASK_DESCRIPTION_MAX = 10_000
AGENT_ID_MAX = 64

# The runtimes a project may name as its default. SandboxService owns the runtimes
# themselves; this is only a check that the name is one it serves.
KNOWN_RUNTIMES = ("python", "node")

# https://github.com/<owner>/<repo>: owner names are alphanumeric with single inner hyphens
# (at most 39 characters); repository names are letters, digits, '.', '-' and '_'.
_GITHUB_URL = re.compile(
    r"https://github\.com/"
    r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})/"
    r"(?P<repo>[A-Za-z0-9._-]{1,100})"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(v: Violations, field: str, value: str, limit: int) -> None:
    if not value.strip():
        v.add(field, "is required")
    elif len(value) > limit:
        v.add(field, f"must be at most {limit} characters")
    elif _CONTROL.search(value):
        v.add(field, "must not contain control characters")


def check_text(v: Violations, field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        v.add(field, f"must be at most {limit} characters")
    elif "\x00" in value:
        v.add(field, "must not contain NUL characters")


def check_repository_url(v: Violations, field: str, value: str) -> None:
    if not value:
        return
    match = _GITHUB_URL.fullmatch(value)
    if len(value) > REPOSITORY_URL_MAX or match is None or match["repo"] in {".", ".."}:
        v.add(field, "must be a GitHub repository URL like https://github.com/owner/repo")


def check_runtime(v: Violations, field: str, value: str) -> None:
    if value and value not in KNOWN_RUNTIMES:
        v.add(field, f"must be empty or one of {', '.join(KNOWN_RUNTIMES)}")


def clean_project(fields: ProjectFields) -> ProjectFields:
    """Strips surrounding whitespace where it carries no meaning."""
    return ProjectFields(
        name=fields.name.strip(),
        description=fields.description,
        repository_url=fields.repository_url.strip().rstrip("/").removesuffix(".git"),
        default_runtime=fields.default_runtime.strip(),
    )


def check_project(v: Violations, fields: ProjectFields, paths: set[str], prefix: str) -> None:
    """Checks the fields named in `paths` (already cleaned)."""
    if "name" in paths:
        check_name(v, f"{prefix}.name", fields.name, NAME_MAX)
    if "description" in paths:
        check_text(v, f"{prefix}.description", fields.description, PROJECT_DESCRIPTION_MAX)
    if "repository_url" in paths:
        check_repository_url(v, f"{prefix}.repository_url", fields.repository_url)
    if "default_runtime" in paths:
        check_runtime(v, f"{prefix}.default_runtime", fields.default_runtime)


def optional_id(v: Violations, field: str, value: str, what: str) -> uuid.UUID | None:
    """The id in `value`; None when empty (or invalid, after adding a violation)."""
    if not value:
        return None
    parsed = parse_id(value)
    if parsed is None:
        v.add(field, f"is not {what}")
    return parsed


def clean_task(fields: TaskFields) -> TaskFields:
    return TaskFields(
        title=fields.title.strip(),
        description=fields.description,
        assignee_user_id=fields.assignee_user_id.strip(),
        agent_id=fields.agent_id.strip(),
        run_id=fields.run_id.strip(),
    )


def check_task(v: Violations, fields: TaskFields, paths: set[str], prefix: str) -> None:
    if "title" in paths:
        check_name(v, f"{prefix}.title", fields.title, TITLE_MAX)
    if "description" in paths:
        check_text(v, f"{prefix}.description", fields.description, TASK_DESCRIPTION_MAX)
    if "assignee_user_id" in paths:
        optional_id(v, f"{prefix}.assignee_user_id", fields.assignee_user_id, "a user id")
    if "agent_id" in paths:
        if len(fields.agent_id) > AGENT_ID_MAX:
            v.add(f"{prefix}.agent_id", f"must be at most {AGENT_ID_MAX} characters")
        elif _CONTROL.search(fields.agent_id):
            v.add(f"{prefix}.agent_id", "must not contain control characters")
    if "run_id" in paths:
        optional_id(v, f"{prefix}.run_id", fields.run_id, "a run id")
