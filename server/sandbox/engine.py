"""What the sandbox domain works with while the container engine is up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from server.sandbox.backend import SandboxBackend
from server.sandbox.executions import OomCounter
from server.sandbox.files import SandboxFiles


@dataclass(frozen=True)
class Engine:
    """The backend, and the helpers built on it, of one connection to the engine."""

    backend: SandboxBackend
    files: SandboxFiles
    oom: OomCounter


RequireEngine = Callable[[], Engine]
"""The current Engine; raises UNAVAILABLE (failures.backend_unavailable) while there is none."""
