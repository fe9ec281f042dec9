"""What the sandbox domain works with while the container engine is up, and the one place
every part of it asks for that."""

from __future__ import annotations

from dataclasses import dataclass

from server.sandbox.backend import SandboxBackend
from server.sandbox.executions import OomCounter
from server.sandbox.failures import backend_unavailable
from server.sandbox.files import SandboxFiles
from server.sandbox.pool import WarmPool


@dataclass(frozen=True)
class Engine:
    """The backend, and the helpers built on it, of one connection to the engine."""

    backend: SandboxBackend
    files: SandboxFiles
    oom: OomCounter
    pool: WarmPool
    host_id: str
    """The engine's id in the database (sandboxes.host_id, sandbox_hosts.id)."""


class EngineProvider:
    """The current Engine, shared by lifecycle, executions and files; set by the backend
    connection (connection.py), which alone attaches it and says whether it is available."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._available = False

    @property
    def available(self) -> bool:
        return self._available

    @property
    def current(self) -> Engine | None:
        """The engine, even while it does not answer (for clean-up that may fail quietly)."""
        return self._engine

    def require(self) -> Engine:
        """The engine; UNAVAILABLE (SANDBOX_BACKEND_UNAVAILABLE) while there is none or it
        does not answer."""
        if self._engine is None or not self._available:
            raise backend_unavailable()
        return self._engine

    def attach(self, engine: Engine) -> None:
        self._engine = engine

    def detach(self) -> Engine | None:
        engine, self._engine = self._engine, None
        self._available = False
        return engine

    def set_available(self, available: bool) -> None:
        self._available = available
