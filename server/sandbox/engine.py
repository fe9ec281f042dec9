"""What the sandbox domain works with on each container engine (Docker host) while it is
connected, and the one place every part of it asks for an engine: the one a sandbox runs on
(by its row's host_id), or the ones a new sandbox may be placed on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from server.db.sandbox_models import SandboxRow
from server.sandbox.backend import EngineDescription, SandboxBackend
from server.sandbox.executions import OomCounter
from server.sandbox.failures import backend_unavailable, host_unavailable
from server.sandbox.files import SandboxFiles
from server.sandbox.pool import WarmPool


@dataclass(frozen=True)
class Engine:
    """The backend, and the helpers built on it, of one connection to one engine."""

    backend: SandboxBackend
    files: SandboxFiles
    oom: OomCounter
    pool: WarmPool
    host_id: str
    """The engine's id in the database (sandboxes.host_id, sandbox_hosts.id)."""
    description: EngineDescription


class EngineProvider:
    """The connected engines, shared by lifecycle, executions and files; filled by the
    backend connection (connection.py), which alone attaches them and says which answer."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self._answering: set[str] = set()

    @property
    def available(self) -> bool:
        """Whether any engine answers (new sandboxes can be made)."""
        return bool(self._answering)

    def answering(self) -> list[Engine]:
        """The engines that answer now, in host id order (placement's candidates)."""
        return [self._engines[host] for host in sorted(self._answering)]

    def all(self) -> Iterable[Engine]:
        return list(self._engines.values())

    def of_host(self, host_id: str | None) -> Engine | None:
        """The engine of `host_id`, even while it does not answer (for clean-up that may
        fail quietly)."""
        return self._engines.get(host_id or "")

    def require(self) -> None:
        """UNAVAILABLE (SANDBOX_BACKEND_UNAVAILABLE) unless some engine answers."""
        if not self._answering:
            raise backend_unavailable()

    def for_row(self, row: SandboxRow) -> Engine:
        """The engine the sandbox runs on; UNAVAILABLE while there is none or it does not
        answer (SANDBOX_BACKEND_UNAVAILABLE with one engine, else SANDBOX_HOST_UNAVAILABLE)."""
        host = row.host_id or ""
        engine = self._engines.get(host)
        if engine is None or host not in self._answering:
            if len(self._engines) <= 1 and not self._answering:
                raise backend_unavailable()
            raise host_unavailable(str(row.id))
        return engine

    def attach(self, engine: Engine) -> None:
        self._engines[engine.host_id] = engine

    def detach(self, host_id: str) -> Engine | None:
        self._answering.discard(host_id)
        return self._engines.pop(host_id, None)

    def set_available(self, host_id: str, available: bool) -> None:
        if available and host_id in self._engines:
            self._answering.add(host_id)
        else:
            self._answering.discard(host_id)
