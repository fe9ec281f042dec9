"""Checks on the fields of artifact requests; each bad field becomes a field violation."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from server.artifacts.kinds import Kind, guess_content_type, guess_kind, is_allowed
from server.artifacts.kinds import normalize_content_type as _normalize
from server.core.errors import Violations
from server.core.ids import parse_id

MAX_TITLE = 200
MAX_FILENAME = 255
MAX_LANGUAGE = 64

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LANGUAGE = re.compile(r"[a-z0-9][a-z0-9+#._-]*")


@dataclass(frozen=True)
class Fields:
    """An artifact's descriptive fields, as a request gives them ("" or None: unset)."""

    title: str = ""
    filename: str = ""
    language: str = ""
    kind: Kind | None = None
    content_type: str = ""


@dataclass(frozen=True)
class CheckedFields:
    title: str
    filename: str
    language: str
    kind: Kind
    content_type: str


def required_id(value: str, field: str, violations: Violations) -> uuid.UUID | None:
    if not value:
        violations.add(field, "is required")
        return None
    return optional_id(value, field, violations)


def optional_id(value: str, field: str, violations: Violations) -> uuid.UUID | None:
    if not value:
        return None
    parsed = parse_id(value)
    if parsed is None:
        violations.add(field, "must be an id (a UUID)")
    return parsed


def has_control_characters(text: str) -> bool:
    return bool(_CONTROL.search(text))


def title(value: str, field: str, violations: Violations) -> str:
    text = value.strip()
    if len(text) > MAX_TITLE:
        violations.add(field, f"must be at most {MAX_TITLE} characters")
    elif _CONTROL.search(text):
        violations.add(field, "must not contain control characters")
    return text


def filename(value: str, field: str, violations: Violations) -> str:
    name = value.strip()
    if len(name) > MAX_FILENAME:
        violations.add(field, f"must be at most {MAX_FILENAME} characters")
    elif _CONTROL.search(name) or "\\" in name:
        violations.add(field, "must not contain control characters or backslashes")
    elif name and (name.startswith("/") or any(p in ("", ".", "..") for p in name.split("/"))):
        violations.add(field, "must be a relative path without empty, '.' or '..' parts")
    return name


def language(value: str, field: str, violations: Violations) -> str:
    lowered = value.strip().lower()
    if lowered and (len(lowered) > MAX_LANGUAGE or not _LANGUAGE.fullmatch(lowered)):
        violations.add(
            field, f"must be a language name such as 'python' (at most {MAX_LANGUAGE} characters)"
        )
    return lowered


def content_type(value: str, field: str, violations: Violations) -> str:
    normalized = _normalize(value)
    if normalized is None:
        violations.add(field, "must be a MIME type such as 'text/x-python'")
        return ""
    return normalized


def allowed_content_type(
    value: str, allowed: Iterable[str], field: str, violations: Violations
) -> None:
    if value and not is_allowed(value, allowed):
        violations.add(field, f"content type '{value}' is not accepted by this server")


def new_fields(
    fields: Fields, prefix: str, violations: Violations, *, default_title: str = ""
) -> CheckedFields:
    """A new artifact's fields: checked, with defaults for what is unset (title from the
    file name, content type from the file name and kind, kind from the content type)."""
    checked_name = filename(fields.filename, f"{prefix}.filename", violations)
    checked_title = title(fields.title, f"{prefix}.title", violations)
    checked_language = language(fields.language, f"{prefix}.language", violations)
    if fields.content_type:
        checked_type = content_type(fields.content_type, f"{prefix}.content_type", violations)
    else:
        checked_type = guess_content_type(checked_name, fields.kind)
    kind = fields.kind or guess_kind(checked_type, checked_language, checked_name)
    if not fields.content_type and fields.kind is None:
        checked_type = guess_content_type(checked_name, kind)
    return CheckedFields(
        title=checked_title or checked_name or default_title or "Untitled",
        filename=checked_name,
        language=checked_language,
        kind=kind,
        content_type=checked_type,
    )
