"""Binds SandboxService into a server whose `server/services.py` does not build it yet (a
no-op once it does), and finds the SandboxManager of a wired server."""

from __future__ import annotations

from collections.abc import Callable

from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc

from server.core.binding import ServiceBinding
from server.sandbox.assembly import build_sandbox
from server.sandbox.manager import SandboxManager
from server.sandbox.service import SERVICE_NAME, SandboxService
from server.services import Dependencies, Wiring

WireFunction = Callable[[Dependencies], Wiring]


def with_sandbox(real_wire: WireFunction, found: list[SandboxManager]) -> WireFunction:
    """`real_wire`, plus SandboxService if it is still unbuilt there; appends the manager
    serving SandboxService to `found`."""

    def wire(deps: Dependencies) -> Wiring:
        wiring = real_wire(deps)
        for index, binding in enumerate(wiring.bindings):
            if binding.full_name != SERVICE_NAME:
                continue
            if isinstance(binding.servicer, SandboxService):
                found.append(binding.servicer.manager)
                continue
            # The lines the lead puts into server/services.py.
            parts = build_sandbox(deps.settings, deps.sessions, deps.page_tokens)
            deps.project_hooks.register(parts.project_cleanup)
            wiring.background.append(parts.lifecycle)
            wiring.bindings[index] = ServiceBinding.of(
                sandbox_pb2, sandbox_pb2_grpc, "SandboxService", parts.servicer
            )
            manager = parts.lifecycle
            found.append(manager)
        return wiring

    return wire
