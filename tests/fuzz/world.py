"""The fuzzing user's world, made through the real API: a user who owns two projects with
tasks, agents, conversations (with messages), a finished run, a sandbox with a file,
artifacts and an API key, a project member; another user who owns the same kinds of
things; and real page tokens of every List RPC. `resolve` turns the strategies' `Ref`
placeholders into these ids.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc

from tests.fuzz.strategies import ID_FIELDS, parse_ref
from tests.support.accounts import PASSWORD, Account

TIMEOUT = 60.0
_numbers = itertools.count()

Metadata = tuple[tuple[str, str], ...]


def register(channel: grpc.Channel, prefix: str) -> Account:
    email = f"{prefix}-{next(_numbers)}-{uuid.uuid4().hex[:6]}@example.com"
    response = auth_pb2_grpc.AuthServiceStub(channel).Register(
        auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name=prefix),
        timeout=TIMEOUT,
    )
    return Account(
        user_id=response.user.id,
        email=email,
        password=PASSWORD,
        access_token=response.tokens.access_token,
        refresh_token=response.tokens.refresh_token,
        session_id=response.tokens.session_id,
    )


@dataclass
class Stubs:
    channel: grpc.Channel
    auth: auth_pb2_grpc.AuthServiceStub
    projects: projects_pb2_grpc.ProjectServiceStub
    agents: agents_pb2_grpc.AgentServiceStub
    sandbox: sandbox_pb2_grpc.SandboxServiceStub
    artifacts: artifacts_pb2_grpc.ArtifactServiceStub

    @classmethod
    def of(cls, channel: grpc.Channel) -> Stubs:
        return cls(
            channel,
            auth_pb2_grpc.AuthServiceStub(channel),
            projects_pb2_grpc.ProjectServiceStub(channel),
            agents_pb2_grpc.AgentServiceStub(channel),
            sandbox_pb2_grpc.SandboxServiceStub(channel),
            artifacts_pb2_grpc.ArtifactServiceStub(channel),
        )


TERMINAL_RUN = (
    agents_pb2.RUN_STATUS_SUCCEEDED,
    agents_pb2.RUN_STATUS_FAILED,
    agents_pb2.RUN_STATUS_CANCELLED,
)


class Maker:
    """Creates one kind of resource for one account, in its first project."""

    def __init__(self, stubs: Stubs, account: Account, project_id: str = "") -> None:
        self.stubs = stubs
        self.account = account
        self.project_id = project_id
        self.md = account.metadata

    def project(self) -> str:
        created = self.stubs.projects.CreateProject(
            projects_pb2.CreateProjectRequest(
                project=projects_pb2.Project(
                    name=f"fuzz {next(_numbers)}", default_runtime="python"
                )
            ),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        return str(created.id)

    def task(self) -> str:
        created = self.stubs.projects.CreateTask(
            projects_pb2.CreateTaskRequest(
                project_id=self.project_id, task=projects_pb2.Task(title=f"task {next(_numbers)}")
            ),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        return str(created.id)

    def agent(self) -> str:
        created = self.stubs.agents.CreateAgent(
            agents_pb2.CreateAgentRequest(
                project_id=self.project_id,
                agent=agents_pb2.Agent(
                    name=f"agent {next(_numbers)}", model="echo", system_prompt="Be brief."
                ),
            ),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        return str(created.id)

    def conversation(self) -> str:
        created = self.stubs.agents.CreateConversation(
            agents_pb2.CreateConversationRequest(
                project_id=self.project_id,
                conversation=agents_pb2.Conversation(title="fuzz", model="echo"),
            ),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        return str(created.id)

    def sandbox(self) -> str:
        created = self.stubs.sandbox.CreateSandbox(
            sandbox_pb2.CreateSandboxRequest(
                project_id=self.project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
            ),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        self.stubs.sandbox.WriteFile(
            sandbox_pb2.WriteFileRequest(sandbox_id=created.id, path="a.txt", content=b"hello\n"),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        return str(created.id)

    def artifact(self) -> str:
        created = self.stubs.artifacts.CreateArtifact(
            artifacts_pb2.CreateArtifactRequest(
                project_id=self.project_id,
                artifact=artifacts_pb2.Artifact(title="fuzz", filename="main.py"),
                content=b"print('hi')\n",
            ),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        return str(created.id)

    def api_key(self) -> str:
        created = self.stubs.auth.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name=f"fuzz {next(_numbers)}"),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        return str(created.api_key.id)

    def chat(self, conversation_id: str) -> list[str]:
        for _ in self.stubs.agents.Chat(
            agents_pb2.ChatRequest(conversation_id=conversation_id, content="hello there"),
            metadata=self.md,
            timeout=TIMEOUT,
        ):
            pass
        listed = self.stubs.agents.ListMessages(
            agents_pb2.ListMessagesRequest(conversation_id=conversation_id),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        return [message.id for message in listed.messages]

    def finished_run(self, agent_id: str) -> str:
        run = self.stubs.agents.StartRun(
            agents_pb2.StartRunRequest(
                project_id=self.project_id, agent_id=agent_id, goal="say hi", model="echo"
            ),
            metadata=self.md,
            timeout=TIMEOUT,
        )
        deadline = time.monotonic() + TIMEOUT
        while run.status not in TERMINAL_RUN:
            assert time.monotonic() < deadline, f"run {run.id} did not finish: {run}"
            time.sleep(0.1)  # polling a run's status: there is no event to wait on here
            run = self.stubs.agents.GetRun(
                agents_pb2.GetRunRequest(run_id=run.id), metadata=self.md, timeout=TIMEOUT
            )
        return str(run.id)

    def make(self, kind: str) -> str:
        maker: Callable[[], str] = getattr(self, kind)
        return maker()


def resources(stubs: Stubs, account: Account, *, member: Account | None) -> dict[str, list[str]]:
    owned: dict[str, list[str]] = {}
    first = Maker(stubs, account)
    owned["project"] = [first.project(), first.project()]
    maker = Maker(stubs, account, owned["project"][0])
    for kind in ("task", "agent", "conversation", "artifact"):
        owned[kind] = [maker.make(kind), maker.make(kind)]
    owned["sandbox"] = [maker.sandbox()]
    owned["message"] = maker.chat(owned["conversation"][0])
    owned["run"] = [maker.finished_run(owned["agent"][0])]
    owned["api_key"] = [maker.api_key()]
    owned["user"] = [account.user_id]
    if member is not None:
        stubs.projects.AddMember(
            projects_pb2.AddMemberRequest(
                project_id=owned["project"][0],
                email=member.email,
                role=projects_pb2.PROJECT_ROLE_EDITOR,
            ),
            metadata=account.metadata,
            timeout=TIMEOUT,
        )
        owned["user"].append(member.user_id)
    return owned


@dataclass
class World:
    stubs: Stubs
    admin: Account
    """The first account, so the server's only admin: it calls the admin RPCs."""
    main: Account
    other: Account
    own: dict[str, list[str]]
    foreign: dict[str, list[str]]
    page_tokens: list[str] = field(default_factory=list)
    account: Account | None = None
    """Who makes the current call: `main`, or a throwaway account."""
    spare_kind: str | None = None
    """The kind the current call deletes: its own ids are a fresh spare, not the seeded."""
    _spare: str | None = None

    @property
    def caller(self) -> Account:
        return self.account or self.main

    def begin(self, account: Account | None = None, spare_kind: str | None = None) -> None:
        self.account = account
        self.spare_kind = spare_kind
        self._spare = None

    def resolve(self, value: str) -> str:
        parsed = parse_ref(value)
        if parsed is None:
            return value
        owner, kind, index = parsed
        pool = self._pool(owner, kind)
        if not pool:
            return str(uuid.UUID(int=index + 1))
        return pool[index % len(pool)]

    def _pool(self, owner: str, kind: str) -> list[str]:
        account = self.caller if owner == "own" else self.other
        if kind == "page_token":
            return self.page_tokens if owner == "own" else [_mangled(t) for t in self.page_tokens]
        by_account = {
            "session": account.session_id,
            "refresh_token": account.refresh_token,
            "password": account.password,
            "email": account.email,
        }
        if kind in by_account:
            return [by_account[kind]]
        if owner == "own" and kind == self.spare_kind:
            if self._spare is None:
                self._spare = (
                    register(self.stubs.channel, "fuzz-spare").user_id
                    if kind == "user"
                    else Maker(self.stubs, self.main, self.own["project"][0]).make(kind)
                )
            return [self._spare]
        return (self.own if owner == "own" else self.foreign).get(kind, [])

    def restore(self) -> None:
        """Resumes or re-creates the seeded sandbox if an earlier example paused it, and
        keeps the main account signed in."""
        sandbox_id = self.own["sandbox"][0]
        try:
            sandbox = self.stubs.sandbox.GetSandbox(
                sandbox_pb2.GetSandboxRequest(sandbox_id=sandbox_id),
                metadata=self.main.metadata,
                timeout=TIMEOUT,
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            sandbox = sandbox_pb2.Sandbox(state=sandbox_pb2.SANDBOX_STATE_DELETED)
        if sandbox.state == sandbox_pb2.SANDBOX_STATE_PAUSED:
            self.stubs.sandbox.ResumeSandbox(
                sandbox_pb2.ResumeSandboxRequest(sandbox_id=sandbox_id),
                metadata=self.main.metadata,
                timeout=TIMEOUT,
            )
        elif sandbox.state == sandbox_pb2.SANDBOX_STATE_DELETED:
            maker = Maker(self.stubs, self.main, self.own["project"][0])
            self.own["sandbox"] = [maker.sandbox()]

    def collect_page_tokens(self, channel: grpc.Channel, lists: Iterable[Any]) -> None:
        """Real next-page tokens: each List RPC asked for a one-item page of seeded data."""
        for rpc in lists:
            request = rpc.request_class(page_size=1)
            for name, kind in ID_FIELDS.items():
                if name in request.DESCRIPTOR.fields_by_name and self.own.get(kind):
                    setattr(request, name, self.own[kind][0])
            call = channel.unary_unary(
                rpc.path,
                request_serializer=rpc.request_class.SerializeToString,
                response_deserializer=rpc.response_class.FromString,
            )
            try:
                response = call(request, metadata=self.main.metadata, timeout=TIMEOUT)
            except grpc.RpcError:
                continue  # e.g. admin-only lists
            token = getattr(response, "next_page_token", "")
            if token:
                self.page_tokens.append(token)


def _mangled(token: str) -> str:
    middle = len(token) // 2
    flipped = "A" if token[middle : middle + 1] != "A" else "B"
    return token[:middle] + flipped + token[middle + 1 :]


def build_world(channel: grpc.Channel) -> World:
    stubs = Stubs.of(channel)
    admin = register(channel, "fuzz-admin")
    me = stubs.auth.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=admin.metadata, timeout=TIMEOUT
    )
    assert me.role == auth_pb2.ROLE_ADMIN, "the fuzz database must start empty"
    main = register(channel, "fuzz-main")
    other = register(channel, "fuzz-other")
    member = register(channel, "fuzz-member")
    own = resources(stubs, main, member=member)
    foreign = resources(stubs, other, member=None)
    return World(stubs=stubs, admin=admin, main=main, other=other, own=own, foreign=foreign)
