"""Update masks: which fields an Update RPC changes.

One meaning everywhere (AIP-134): the paths named in `update_mask` are updated (a named
field sent empty is cleared); an empty mask updates every mutable field that the request
populates (non-empty), and leaves the others as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.core.errors import FieldViolation, InvalidArgument


def update_paths(mask: Iterable[str], mutable: Iterable[str], resource: Any) -> set[str]:
    """The validated set of top-level fields to update on `resource` (the request's
    message). Unknown or immutable paths are INVALID_ARGUMENT naming each path."""
    allowed = set(mutable)
    requested = [p.strip() for p in mask if p.strip()]
    if not requested:
        return {name for name in allowed if populated(resource, name)}
    bad = [p for p in requested if p not in allowed]
    if bad:
        raise InvalidArgument.of(
            [FieldViolation("update_mask", f"'{p}' is unknown or cannot be updated") for p in bad]
        )
    return set(requested)


def populated(message: Any, name: str) -> bool:
    """Whether a field of a proto message is set: present for message and optional
    fields, non-empty (non-zero) for the others."""
    try:
        return bool(message.HasField(name))
    except ValueError:  # not a field with presence
        value = getattr(message, name)
        return bool(len(value)) if hasattr(value, "__len__") else bool(value)
