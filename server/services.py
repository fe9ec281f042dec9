"""The servicers this server exposes, and what they are built from."""

from __future__ import annotations

from dataclasses import dataclass

from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from forge.testing.v1 import testing_pb2, testing_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.binding import ServiceBinding
from server.testing.service import TestingService

AUTH_PUBLIC_METHODS = (
    "Register",
    "Login",
    "RefreshToken",
    "Logout",
    "RequestPasswordReset",
    "ResetPassword",
    "VerifyEmail",
)


@dataclass(frozen=True)
class Dependencies:
    """What servicers are built from; one instance per server."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]


def service_bindings(deps: Dependencies) -> list[ServiceBinding]:
    # Services whose issues have not landed yet are bound to the generated base servicer:
    # the call interceptor answers their RPCs UNIMPLEMENTED (reason NOT_IMPLEMENTED).
    bindings = [
        ServiceBinding.unbuilt(
            auth_pb2, auth_pb2_grpc, "AuthService", public_methods=AUTH_PUBLIC_METHODS
        ),
        ServiceBinding.unbuilt(projects_pb2, projects_pb2_grpc, "ProjectService"),
        ServiceBinding.unbuilt(agents_pb2, agents_pb2_grpc, "AgentService"),
        ServiceBinding.unbuilt(sandbox_pb2, sandbox_pb2_grpc, "SandboxService"),
        ServiceBinding.unbuilt(artifacts_pb2, artifacts_pb2_grpc, "ArtifactService"),
    ]
    if deps.settings.enable_testing_service:
        bindings.append(
            ServiceBinding.of(
                testing_pb2,
                testing_pb2_grpc,
                "TestingService",
                TestingService(),
                public_methods=("Echo", "StreamTicks"),
            )
        )
    return bindings
