"""Wires the services: what each servicer is built from, and what runs in the background."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from forge.testing.v1 import testing_pb2, testing_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.assembly import build_agents
from server.agents.hooks import AnswerListener
from server.artifacts.assembly import build_artifacts
from server.auth.accounts import Accounts
from server.auth.authenticator import DatabaseAuthenticator
from server.auth.directory import Directory
from server.auth.mail import MailSender
from server.auth.passwords import PasswordHasher
from server.auth.service import PUBLIC_METHODS as AUTH_PUBLIC_METHODS
from server.auth.service import AuthService
from server.auth.tokens import AccessTokens
from server.config import Settings
from server.core.binding import ServiceBinding
from server.core.credentials import Authenticator
from server.core.pagination import PageTokens
from server.projects.cleanup import ProjectDeletionHooks
from server.projects.members import Members
from server.projects.projects import Projects
from server.projects.service import ProjectService
from server.projects.tasks import Board
from server.sandbox.assembly import build_sandbox
from server.testing.service import TestingService


class Background(Protocol):
    """A component with work of its own (senders, pools, reapers)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class Dependencies:
    """What servicers are built from; one instance per server."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    secret: bytes
    page_tokens: PageTokens = field(init=False)
    project_hooks: ProjectDeletionHooks = field(default_factory=ProjectDeletionHooks)
    answer_listeners: list[AnswerListener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page_tokens = PageTokens(self.secret)


# Given a callback, a service calls it with True/False whenever it can/cannot serve.
FollowHealth = Callable[[Callable[[bool], Awaitable[None]]], None]


@dataclass
class Wiring:
    bindings: list[ServiceBinding]
    authenticator: Authenticator
    background: list[Background]
    # Services whose health depends on a backend (e.g. Docker) beyond the process itself.
    availability: dict[str, FollowHealth] = field(default_factory=dict)


class _MailLifecycle:
    def __init__(self, sender: MailSender, hasher: PasswordHasher) -> None:
        self._sender = sender
        self._hasher = hasher

    async def start(self) -> None:
        self._sender.start()

    async def stop(self) -> None:
        await self._sender.stop()
        self._hasher.close()


def wire(deps: Dependencies) -> Wiring:
    settings = deps.settings
    access_tokens = AccessTokens(
        deps.secret,
        settings.jwt_issuer,
        settings.jwt_audience,
        timedelta(seconds=settings.access_token_ttl_seconds),
    )
    hasher = PasswordHasher(settings.bcrypt_rounds)
    smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    mail = MailSender(deps.sessions, smtp_url, settings.mail_from)
    accounts = Accounts(settings, deps.sessions, hasher, access_tokens, mail)
    auth = AuthService(accounts, Directory(deps.sessions, deps.page_tokens))

    background: list[Background] = [_MailLifecycle(mail, hasher)]
    availability: dict[str, FollowHealth] = {}

    # Services whose issues have not landed yet are bound to the generated base servicer:
    # the call interceptor answers their RPCs UNIMPLEMENTED (reason NOT_IMPLEMENTED).

    # --- projects ---
    projects = ServiceBinding.of(
        projects_pb2,
        projects_pb2_grpc,
        "ProjectService",
        ProjectService(
            Projects(deps.sessions, deps.page_tokens, deps.project_hooks),
            Members(deps.sessions, deps.page_tokens),
            Board(deps.sessions, deps.page_tokens),
        ),
    )

    # --- agents ---
    agent_parts = build_agents(settings, deps.sessions, deps.page_tokens, deps.answer_listeners)
    agents = ServiceBinding.of(agents_pb2, agents_pb2_grpc, "AgentService", agent_parts.servicer)
    background.append(agent_parts.lifecycle)

    # --- sandbox ---
    sandbox_parts = build_sandbox(settings, deps.sessions, deps.page_tokens)
    sandbox = ServiceBinding.of(
        sandbox_pb2, sandbox_pb2_grpc, "SandboxService", sandbox_parts.servicer
    )
    deps.project_hooks.register(sandbox_parts.project_cleanup)
    background.append(sandbox_parts.lifecycle)
    availability[sandbox_parts.service_name] = sandbox_parts.follow_health

    # --- artifacts ---
    artifact_parts = build_artifacts(settings, deps.sessions, deps.page_tokens)
    artifacts = ServiceBinding.of(
        artifacts_pb2, artifacts_pb2_grpc, "ArtifactService", artifact_parts.servicer
    )
    deps.answer_listeners.append(artifact_parts.answer_listener)
    deps.project_hooks.register(artifact_parts.project_cleanup)
    background.append(artifact_parts.lifecycle)

    bindings = [
        ServiceBinding.of(
            auth_pb2, auth_pb2_grpc, "AuthService", auth, public_methods=AUTH_PUBLIC_METHODS
        ),
        projects,
        agents,
        sandbox,
        artifacts,
    ]
    if settings.enable_testing_service:
        bindings.append(
            ServiceBinding.of(
                testing_pb2,
                testing_pb2_grpc,
                "TestingService",
                TestingService(),
                public_methods=("Echo", "StreamTicks"),
            )
        )
    return Wiring(
        bindings=bindings,
        authenticator=DatabaseAuthenticator(deps.sessions, access_tokens),
        background=background,
        availability=availability,
    )
