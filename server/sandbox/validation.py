"""Checks on execution inputs shared by Exec and RunCode."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from server.core.errors import Violations

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ENV_BYTES = 64 * 1024
MAX_ENV_VARS = 256
MIN_TIMEOUT = timedelta(milliseconds=100)


def check_env(env: Mapping[str, str], field: str, violations: Violations) -> None:
    if len(env) > MAX_ENV_VARS:
        violations.add(field, f"at most {MAX_ENV_VARS} variables")
        return
    total = 0
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            violations.add(
                f"{field}[{name!r}]", "names are letters, digits and _, not first a digit"
            )
        elif "\x00" in value:
            violations.add(f"{field}[{name!r}]", "must not contain NUL characters")
        total += len(name) + len(value.encode())
    if total > MAX_ENV_BYTES:
        violations.add(field, f"must be at most {MAX_ENV_BYTES} bytes in all")


def check_timeout(
    value: timedelta | None, field: str, maximum: timedelta, violations: Violations
) -> None:
    if value is None:
        return
    if value < MIN_TIMEOUT:
        violations.add(field, f"must be at least {MIN_TIMEOUT.total_seconds():g}s (or unset)")
    elif value > maximum:
        violations.add(field, f"must be at most {maximum.total_seconds():g}s")
