"""Update masks: which paths an Update RPC may change."""

from __future__ import annotations

from collections.abc import Iterable

from server.core.errors import FieldViolation, InvalidArgument


def mask_paths(
    paths: Iterable[str], mutable: Iterable[str], *, default_all: bool = True
) -> set[str]:
    """The validated set of paths to update.

    Unknown or immutable paths are INVALID_ARGUMENT naming the path. An empty mask means
    every mutable field (AIP-134) when `default_all`, else it is an error.
    """
    allowed = set(mutable)
    requested = [p.strip() for p in paths if p.strip()]
    if not requested:
        if default_all:
            return allowed
        raise InvalidArgument.of(
            [FieldViolation("update_mask", "name at least one field to update")]
        )
    bad = [p for p in requested if p not in allowed]
    if bad:
        raise InvalidArgument.of(
            [FieldViolation("update_mask", f"'{p}' is unknown or cannot be updated") for p in bad]
        )
    return set(requested)
