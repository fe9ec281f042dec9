"""How list settings are read from the environment."""

from __future__ import annotations

import json


def comma_list(value: object) -> object:
    """A list setting from the environment: "a, b" or a JSON list."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        return json.loads(value)
    return [part.strip() for part in value.split(",") if part.strip()]
