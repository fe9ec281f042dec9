"""Sandbox limits: the effective values, and resolving a request against defaults and maxima."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from server.core.errors import Violations

MiB = 1024 * 1024

# The smallest values that still make a usable sandbox; below them a request is refused.
_MINIMUMS: dict[str, int | timedelta] = {
    "memory_bytes": 16 * MiB,
    "cpu_millis": 10,
    "pids": 8,
    "disk_bytes": MiB,
    "tmp_bytes": MiB,
    "exec_timeout": timedelta(milliseconds=100),
    "idle_timeout": timedelta(milliseconds=100),
    "output_limit_bytes": 1024,
}


@dataclass(frozen=True)
class Limits:
    """Resource and time limits of a sandbox and of the executions in it."""

    memory_bytes: int
    cpu_millis: int
    pids: int
    disk_bytes: int
    tmp_bytes: int
    exec_timeout: timedelta
    idle_timeout: timedelta
    output_limit_bytes: int

    def container_key(self) -> tuple[int, int, int, int, int]:
        """The limits fixed when a container is created (a warm container must match them)."""
        return (self.memory_bytes, self.cpu_millis, self.pids, self.disk_bytes, self.tmp_bytes)

    def to_json(self) -> dict[str, Any]:
        return {
            "memory_bytes": self.memory_bytes,
            "cpu_millis": self.cpu_millis,
            "pids": self.pids,
            "disk_bytes": self.disk_bytes,
            "tmp_bytes": self.tmp_bytes,
            "exec_timeout_ms": _ms(self.exec_timeout),
            "idle_timeout_ms": _ms(self.idle_timeout),
            "output_limit_bytes": self.output_limit_bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], fallback: Limits) -> Limits:
        def integer(name: str, default: int) -> int:
            value = data.get(name)
            return int(value) if isinstance(value, int | float) else default

        def millis(name: str, default: timedelta) -> timedelta:
            value = data.get(name)
            return timedelta(milliseconds=value) if isinstance(value, int | float) else default

        return cls(
            memory_bytes=integer("memory_bytes", fallback.memory_bytes),
            cpu_millis=integer("cpu_millis", fallback.cpu_millis),
            pids=integer("pids", fallback.pids),
            disk_bytes=integer("disk_bytes", fallback.disk_bytes),
            tmp_bytes=integer("tmp_bytes", fallback.tmp_bytes),
            exec_timeout=millis("exec_timeout_ms", fallback.exec_timeout),
            idle_timeout=millis("idle_timeout_ms", fallback.idle_timeout),
            output_limit_bytes=integer("output_limit_bytes", fallback.output_limit_bytes),
        )


def _ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


@dataclass(frozen=True)
class LimitRequest:
    """Requested limits; None (or zero in the API) means the runtime's default."""

    memory_bytes: int | None = None
    cpu_millis: int | None = None
    pids: int | None = None
    disk_bytes: int | None = None
    tmp_bytes: int | None = None
    exec_timeout: timedelta | None = None
    idle_timeout: timedelta | None = None
    output_limit_bytes: int | None = None


def resolve_limits(
    request: LimitRequest, default: Limits, maximum: Limits, field_prefix: str
) -> Limits:
    """The effective limits for `request`; INVALID_ARGUMENT naming every out-of-range field."""
    violations = Violations()
    values: dict[str, Any] = {}
    for item in fields(Limits):
        name = item.name
        asked = getattr(request, name)
        if asked is None:
            values[name] = getattr(default, name)
            continue
        lowest = _MINIMUMS[name]
        highest = getattr(maximum, name)
        path = f"{field_prefix}.{name}"
        if asked < lowest:
            violations.add(path, f"must be at least {_describe(lowest)} (or unset for the default)")
        elif asked > highest:
            violations.add(path, f"must be at most {_describe(highest)}")
        values[name] = asked
    violations.raise_if_any()
    return Limits(**values)


def _describe(value: int | timedelta) -> str:
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    return str(value)
