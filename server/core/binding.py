"""How a servicer is attached to the server, and which of its RPCs are built."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from server.core.admission import Admission


@dataclass(frozen=True)
class ServiceBinding:
    descriptor: ServiceDescriptor
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    base: type
    public_methods: frozenset[str] = frozenset()
    replayed_by_servicer: frozenset[str] = frozenset()
    caller_if_given: frozenset[str] = frozenset()
    admitted: Mapping[str, Admission] = field(default_factory=dict)
    state_read_by_handler: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        pb2: ModuleType,
        pb2_grpc: ModuleType,
        name: str,
        servicer: Any,
        public_methods: Iterable[str] = (),
        replayed_by_servicer: Iterable[str] = (),
        caller_if_given: Iterable[str] = (),
        admitted: Mapping[str, Admission] | None = None,
        state_read_by_handler: Iterable[str] = (),
    ) -> ServiceBinding:
        """Binds `servicer` (an instance of the generated `<name>Servicer` or a subclass).

        `public_methods` are the RPC names callers may use without credentials;
        `caller_if_given` those of them that still identify a caller whose credentials are
        sent (valid ones; others leave the call anonymous); `replayed_by_servicer` those whose
        request ids the servicer handles itself (server/core/idempotent_calls.py handles the
        others'); `admitted` the streaming RPCs whose opens (up to their first message) an
        Admission bounds (server/core/admission.py); `state_read_by_handler` the unary RPCs
        whose handler reads a signed-in caller's account state with its own first statement
        and confirms the caller (server/core/caller_state.py)."""
        base = getattr(pb2_grpc, f"{name}Servicer")
        if not isinstance(servicer, base):
            raise TypeError(f"{type(servicer).__name__} does not implement {name}")
        return cls(
            descriptor=pb2.DESCRIPTOR.services_by_name[name],
            servicer=servicer,
            add_to_server=getattr(pb2_grpc, f"add_{name}Servicer_to_server"),
            base=base,
            public_methods=frozenset(public_methods),
            replayed_by_servicer=frozenset(replayed_by_servicer),
            caller_if_given=frozenset(caller_if_given),
            admitted=dict(admitted or {}),
            state_read_by_handler=frozenset(state_read_by_handler),
        )

    @property
    def full_name(self) -> str:
        return str(self.descriptor.full_name)

    def public_paths(self) -> list[str]:
        return [f"/{self.full_name}/{name}" for name in sorted(self.public_methods)]

    def admitted_paths(self) -> dict[str, Admission]:
        return {f"/{self.full_name}/{name}": gate for name, gate in self.admitted.items()}

    def caller_if_given_paths(self) -> list[str]:
        return [f"/{self.full_name}/{name}" for name in sorted(self.caller_if_given)]

    def state_read_by_handler_paths(self) -> list[str]:
        return [f"/{self.full_name}/{name}" for name in sorted(self.state_read_by_handler)]

    def replayed_by_servicer_paths(self) -> list[str]:
        return [f"/{self.full_name}/{name}" for name in sorted(self.replayed_by_servicer)]

    def unimplemented_paths(self) -> list[str]:
        """RPCs the servicer inherits unchanged from the generated base class."""
        return [
            f"/{self.full_name}/{m.name}"
            for m in self.descriptor.methods
            if getattr(type(self.servicer), m.name) is getattr(self.base, m.name)
        ]
