"""What the soak's load generator calls: its users (set up once), the unary call mix (gRPC
straight to the server, REST/JSON through Envoy) and chat streams (gRPC, or SSE through
Envoy). Every failure is filed under "<route> <method>: <status> <reason>"."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

PASSWORD = "Soak-Passw0rd"
UNARY_TIMEOUT = 30.0
CHAT_METHOD = "/forge.agents.v1.AgentService/Chat"


class Errors:
    """Failures by kind, with the first message of each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def add(self, kind: str, message: str = "") -> None:
        self.counts[kind] += 1
        self.first.setdefault(kind, message[:300])

    def grpc(self, what: str, error: grpc.aio.AioRpcError) -> None:
        self.add(
            f"{what}: {error.code().name} {_reason_of_call(error)}".rstrip(), error.details() or ""
        )

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "first": self.first}


def _reason(status: status_pb2.Status) -> str:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def _reason_of_call(error: grpc.aio.AioRpcError) -> str:
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return ""
    return _reason(status) if status is not None else ""


def _rest_reason(body: str) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return ""
    for detail in parsed.get("details", []) if isinstance(parsed, dict) else []:
        if isinstance(detail, dict) and detail.get("reason"):
            return str(detail["reason"])
    return ""


@dataclass
class User:
    email: str
    access_token: str
    refresh_token: str
    project_id: str
    metadata: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)

    def use(self, access_token: str, refresh_token: str) -> None:
        self.access_token, self.refresh_token = access_token, refresh_token
        self.metadata = (("authorization", f"Bearer {access_token}"),)
        self.headers = {"authorization": f"Bearer {access_token}"}


async def set_up_user(channel: grpc.aio.Channel, email: str, tasks: int) -> User:
    """Registers `email`, creates its project and `tasks` tasks in it."""
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    registered = await auth.Register(
        auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=120
    )
    user = User(email, "", "", "")
    user.use(registered.tokens.access_token, registered.tokens.refresh_token)
    projects = projects_pb2_grpc.ProjectServiceStub(channel)
    project = await projects.CreateProject(
        projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name=f"soak {email}")),
        metadata=user.metadata,
        timeout=UNARY_TIMEOUT,
    )
    user.project_id = project.id
    for n in range(tasks):
        await projects.CreateTask(
            projects_pb2.CreateTaskRequest(
                project_id=project.id, task=projects_pb2.Task(title=f"seed {n}")
            ),
            metadata=user.metadata,
            timeout=UNARY_TIMEOUT,
        )
    return user


async def refresh(channel: grpc.aio.Channel, user: User) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    response = await auth.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=user.refresh_token), timeout=UNARY_TIMEOUT
    )
    user.use(response.tokens.access_token, response.tokens.refresh_token)


UnaryCall = Callable[[User, int], Awaitable[None]]


class UnaryMix:
    """The unary calls of the soak, each a coroutine `call(user, n)` that raises on failure
    (files it in `errors` and returns False from `run`)."""

    def __init__(
        self, channel: grpc.aio.Channel, http: aiohttp.ClientSession | None, envoy_url: str
    ) -> None:
        self._projects = projects_pb2_grpc.ProjectServiceStub(channel)
        self._auth = auth_pb2_grpc.AuthServiceStub(channel)
        self._http = http
        self._envoy = envoy_url
        self.calls: dict[str, UnaryCall] = {
            "grpc GetProject": self._get_project,
            "grpc ListProjects": self._list_projects,
            "grpc GetCurrentUser": self._current_user,
            "grpc ListTasks": self._list_tasks,
            "grpc CreateTask": self._create_task,
        }
        if http is not None:
            self.calls |= {
                "rest GetProject": lambda user, _n: self._rest(
                    user, f"/v1/projects/{user.project_id}"
                ),
                "rest GetCurrentUser": lambda user, _n: self._rest(user, "/v1/users/me"),
                "rest ListTasks": lambda user, _n: self._rest(
                    user, f"/v1/projects/{user.project_id}/tasks?pageSize=20"
                ),
            }

    async def run(self, name: str, user: User, n: int, errors: Errors) -> bool:
        try:
            await self.calls[name](user, n)
        except grpc.aio.AioRpcError as error:
            errors.grpc(name, error)
            return False
        except RestError as error:
            errors.add(f"{name}: {error.kind}", error.body)
            return False
        except (TimeoutError, aiohttp.ClientError) as error:
            errors.add(f"{name}: {type(error).__name__}", repr(error))
            return False
        return True

    async def _get_project(self, user: User, _n: int) -> None:
        await self._projects.GetProject(
            projects_pb2.GetProjectRequest(project_id=user.project_id),
            metadata=user.metadata,
            timeout=UNARY_TIMEOUT,
        )

    async def _list_projects(self, user: User, _n: int) -> None:
        await self._projects.ListProjects(
            projects_pb2.ListProjectsRequest(page_size=20),
            metadata=user.metadata,
            timeout=UNARY_TIMEOUT,
        )

    async def _current_user(self, user: User, _n: int) -> None:
        await self._auth.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=user.metadata, timeout=UNARY_TIMEOUT
        )

    async def _list_tasks(self, user: User, _n: int) -> None:
        await self._projects.ListTasks(
            projects_pb2.ListTasksRequest(project_id=user.project_id, page_size=20),
            metadata=user.metadata,
            timeout=UNARY_TIMEOUT,
        )

    async def _create_task(self, user: User, n: int) -> None:
        await self._projects.CreateTask(
            projects_pb2.CreateTaskRequest(
                project_id=user.project_id, task=projects_pb2.Task(title=f"soak {n}")
            ),
            metadata=user.metadata,
            timeout=UNARY_TIMEOUT,
        )

    async def _rest(self, user: User, path: str) -> None:
        assert self._http is not None
        async with self._http.get(
            self._envoy + path,
            headers=user.headers,
            timeout=aiohttp.ClientTimeout(total=UNARY_TIMEOUT),
        ) as response:
            body = await response.read()
            if response.status != 200:
                text = body.decode(errors="replace")
                raise RestError(f"HTTP {response.status} {_rest_reason(text)}".rstrip(), text)


class RestError(Exception):
    def __init__(self, kind: str, body: str) -> None:
        super().__init__(kind)
        self.kind, self.body = kind, body


@dataclass
class ChatOutcome:
    """What one chat saw (perf_counter times; 0 = never)."""

    sent: float = 0.0
    started: float = 0.0
    first_delta: float = 0.0
    last_delta: float = 0.0
    tokens: int = 0
    completed: bool = False
    gaps: list[float] | None = None
    """Time between consecutive deltas (kept for sampled chats only)."""


class Streams:
    """Opens conversations and chats in them, over gRPC or SSE through Envoy."""

    def __init__(
        self, channel: grpc.aio.Channel, http: aiohttp.ClientSession | None, envoy_url: str
    ) -> None:
        self._agents = agents_pb2_grpc.AgentServiceStub(channel)
        self._chat: Any = channel.unary_stream(
            CHAT_METHOD,
            request_serializer=agents_pb2.ChatRequest.SerializeToString,
            response_deserializer=None,
        )
        self._http = http
        self._envoy = envoy_url
        self.tokens = 0
        """Tokens received by every chat so far."""

    async def conversation(self, user: User) -> str:
        created = await self._agents.CreateConversation(
            agents_pb2.CreateConversationRequest(
                project_id=user.project_id, conversation=agents_pb2.Conversation()
            ),
            metadata=user.metadata,
            timeout=UNARY_TIMEOUT,
        )
        return str(created.id)

    async def grpc_chat(
        self, user: User, conversation_id: str, content: str, out: ChatOutcome, errors: Errors
    ) -> None:
        call = self._chat(
            agents_pb2.ChatRequest(conversation_id=conversation_id, content=content),
            metadata=user.metadata,
            timeout=3600,
        )
        parse = agents_pb2.ChatEvent.FromString
        try:
            async for raw in call:
                event = parse(raw)
                kind = event.WhichOneof("event")
                if kind == "delta":
                    self._delta(out, len(event.delta.text.split()))
                elif kind == "started":
                    out.started = time.perf_counter()
                elif kind == "completed":
                    out.completed = True
                elif kind == "error":
                    code = grpc.StatusCode.UNKNOWN
                    for candidate in grpc.StatusCode:
                        if candidate.value[0] == event.error.code:
                            code = candidate
                    errors.add(
                        f"grpc Chat (in-band error): {code.name} {_reason(event.error)}",
                        event.error.message,
                    )
                    return
        except grpc.aio.AioRpcError as error:
            errors.grpc("grpc Chat", error)
            return
        if not out.completed:
            errors.add("grpc Chat: ended without its terminal event")

    async def sse_chat(
        self, user: User, conversation_id: str, content: str, out: ChatOutcome, errors: Errors
    ) -> None:
        assert self._http is not None
        loads = json.loads
        try:
            async with self._http.post(
                f"{self._envoy}/v1/conversations/{conversation_id}:chat",
                json={"content": content},
                headers=user.headers,
            ) as response:
                if response.status != 200:
                    text = await response.text()
                    errors.add(f"sse Chat: HTTP {response.status} {_rest_reason(text)}", text)
                    return
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *frames, buffer = buffer.split(b"\n\n")
                    for frame in frames:
                        event = loads(frame.removeprefix(b"data: "))
                        if "delta" in event:
                            self._delta(out, len(event["delta"].get("text", "").split()))
                        elif "started" in event:
                            out.started = time.perf_counter()
                        elif "completed" in event:
                            out.completed = True
                        elif "error" in event:
                            status = event["error"]
                            reason = _rest_reason(json.dumps(status))
                            errors.add(
                                f"sse Chat (in-band error): {status.get('code')} {reason}",
                                str(status.get("message", "")),
                            )
                            return
        except (TimeoutError, aiohttp.ClientError, ValueError) as error:
            errors.add(f"sse Chat: {type(error).__name__}", repr(error))
            return
        if not out.completed:
            errors.add("sse Chat: ended without its terminal event")

    def _delta(self, out: ChatOutcome, tokens: int) -> None:
        now = time.perf_counter()
        if out.first_delta:
            if out.gaps is not None:
                out.gaps.append(now - out.last_delta)
        else:
            out.first_delta = now
        out.last_delta = now
        out.tokens += tokens
        self.tokens += tokens
