"""Chat clients for the load generators: Forge's Chat over gRPC (direct) or over REST/SSE
(through Envoy), and the SSE peer; plus the Forge set-up (account, project, conversations).

Each client runs one chat and reports its events to a `ChatLog` as they arrive; it keeps
per-event work to a minimum (the load generator must not be the bottleneck)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

from bench.loadgen.http1 import Http1Pool

PASSWORD = "Bench-Passw0rd"
CHAT_METHOD = "/forge.agents.v1.AgentService/Chat"
# Plain words only: the echo model writes code blocks when asked for "code", "script", …
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]


def prompt(words: int) -> str:
    """A prompt of `words` words; the echo model's answer is about words + 40 tokens."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


def answer_tokens(words: int) -> int:
    """Tokens of the echo model's answer to `prompt(words)` (its frame adds the rest)."""
    from server.llm.echo_answer import INTRO, OUTRO

    return len(INTRO.split()) + words + len(OUTRO.split())


@dataclass
class Chat:
    """What one chat saw (perf_counter times)."""

    sent: float = 0.0
    started: float = 0.0
    first_delta: float = 0.0
    ended: float = 0.0
    tokens: int = 0
    error: str = ""
    arrivals: list[float] | None = None
    """Arrival time of every delta (kept for sampled chats only)."""
    tried: float = 0.0
    """When the try that opened it was sent (after SERVER_BUSY refusals, the last one)."""
    busy_retries: int = 0
    """Times the server refused to open it yet (SERVER_BUSY) and it was tried again after
    the RetryInfo delay, as a well-behaved client does; its times count from the first try."""


@dataclass
class ChatLog:
    """Counters shared by all chats of a phase (read by the window sampler)."""

    tokens: int = 0
    deltas: int = 0
    chats: list[Chat] = field(default_factory=list)


class ForgeGrpcChats:
    """Chat over gRPC, straight to the server. Responses stay bytes until parsed here."""

    def __init__(
        self, port: int, metadata: Sequence[tuple[str, str]], channels: int, model: str = ""
    ) -> None:
        self._model = model
        """The model each chat asks for ("": the conversation's own)."""
        self._channels = [
            grpc.aio.insecure_channel(
                f"127.0.0.1:{port}",
                # Own connection per channel (not the process-wide subchannel pool).
                options=[("grpc.use_local_subchannel_pool", 1)],
            )
            for _ in range(max(channels, 1))
        ]
        self._calls: list[Any] = [
            channel.unary_stream(
                CHAT_METHOD,
                request_serializer=agents_pb2.ChatRequest.SerializeToString,
                response_deserializer=None,
            )
            for channel in self._channels
        ]
        self._metadata = tuple(metadata)
        self._get_project = projects_pb2_grpc.ProjectServiceStub(self._channels[0]).GetProject

    async def chat(
        self,
        index: int,
        conversation_id: str,
        content: str,
        log: ChatLog,
        chat: Chat,
        max_output_tokens: int = 0,
    ) -> None:
        request = agents_pb2.ChatRequest(
            conversation_id=conversation_id, content=content, model=self._model
        )
        if max_output_tokens:
            request.parameters.max_output_tokens = max_output_tokens
        await retried_while_busy(chat, lambda: self._chat_once(index, request, log, chat))

    async def get_project(self, project_id: str) -> None:
        await self._get_project(
            projects_pb2.GetProjectRequest(project_id=project_id),
            metadata=self._metadata,
            timeout=60,
        )

    async def _chat_once(
        self, index: int, request: agents_pb2.ChatRequest, log: ChatLog, chat: Chat
    ) -> float | None:
        """Runs the chat; the RetryInfo delay when the server was too busy to open it."""
        call = self._calls[index % len(self._calls)](
            request,
            metadata=self._metadata,
            timeout=3600,
        )
        parse = agents_pb2.ChatEvent.FromString
        arrivals = chat.arrivals
        now = time.perf_counter
        try:
            async for raw in call:
                event = parse(raw)
                if event.HasField("delta"):
                    tokens = len(event.delta.text.split())
                    log.tokens += tokens
                    log.deltas += 1
                    chat.tokens += tokens
                    if not chat.first_delta:
                        chat.first_delta = now()
                    if arrivals is not None:
                        arrivals.append(now())
                elif event.HasField("started"):
                    chat.started = now()
        except grpc.aio.AioRpcError as error:
            if not chat.started and (delay := _busy_retry_delay(error)) is not None:
                return delay
            if error.code() != grpc.StatusCode.CANCELLED:
                chat.error = f"{error.code().name}: {error.details()}"
        chat.ended = now()
        return None

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


async def retried_while_busy(chat: Chat, once: Callable[[], Awaitable[float | None]]) -> None:
    """Runs the chat (`once`), again after each SERVER_BUSY refusal's RetryInfo delay."""
    while True:
        chat.tried = time.perf_counter()
        delay = await once()
        if delay is None:
            return
        chat.busy_retries += 1
        chat.error = ""
        await asyncio.sleep(delay)


def _busy_body_delay(text: str) -> float | None:
    """The RetryInfo delay of a SERVER_BUSY refusal as JSON (google.rpc.Status), else None."""
    try:
        details = json.loads(text).get("details", [])
    except (ValueError, AttributeError):
        return None
    reasons = {detail.get("reason") for detail in details}
    delays = [detail["retryDelay"] for detail in details if "retryDelay" in detail]
    if "SERVER_BUSY" not in reasons:
        return None
    return float(delays[0].removesuffix("s")) if delays else 1.0


def _busy_retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay of a SERVER_BUSY refusal (RESOURCE_EXHAUSTED), else None."""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not isinstance(details, bytes):
        return None
    status = status_pb2.Status.FromString(details)
    busy = False
    delay = 1.0
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            busy = info.reason == "SERVER_BUSY"
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToTimedelta().total_seconds()
    return delay if busy else None


class SseChats:
    """Chat over HTTP/1.1 server-sent events: Forge's REST route through Envoy
    (`/v1/conversations/{id}:chat`) or the peer's `/chat`, on kept-alive connections
    (bench/loadgen/http1.py)."""

    def __init__(self, base_url: str, path: str, headers: dict[str, str]) -> None:
        self._http = Http1Pool.of(base_url)
        self._path = path
        self._headers = {**headers, "content-type": "application/json"}

    async def chat(
        self,
        index: int,
        conversation_id: str,
        content: str,
        log: ChatLog,
        chat: Chat,
        max_output_tokens: int = 0,
    ) -> None:
        body: dict[str, Any] = {"content": content}
        if max_output_tokens:
            body["parameters"] = {"maxOutputTokens": max_output_tokens}
        await retried_while_busy(chat, lambda: self._chat_once(conversation_id, body, log, chat))

    async def _chat_once(
        self, conversation_id: str, body: dict[str, Any], log: ChatLog, chat: Chat
    ) -> float | None:
        """Runs the chat; the RetryInfo delay when the server was too busy to open it (HTTP
        429 with SERVER_BUSY, as the transcoder maps RESOURCE_EXHAUSTED)."""
        arrivals = chat.arrivals
        now = time.perf_counter
        loads = json.loads
        try:
            async with self._http.request(
                "POST",
                self._path.format(conversation_id=conversation_id),
                self._headers,
                json.dumps(body).encode(),
            ) as response:
                if response.status != 200:
                    text = (await response.read()).decode()
                    if response.status == 429 and (delay := _busy_body_delay(text)) is not None:
                        return delay
                    chat.error = f"HTTP {response.status}: {text[:200]}"
                    return None
                buffer = b""
                async for chunk in response.chunks():
                    buffer += chunk
                    *frames, buffer = buffer.split(b"\n\n")
                    for frame in frames:
                        if b'"delta"' in frame:
                            tokens = len(loads(frame[6:])["delta"]["text"].split())
                            log.tokens += tokens
                            log.deltas += 1
                            chat.tokens += tokens
                            if not chat.first_delta:
                                chat.first_delta = now()
                            if arrivals is not None:
                                arrivals.append(now())
                        elif b'"started"' in frame:
                            chat.started = now()
                        elif b'"error"' in frame or b'"code"' in frame:
                            chat.error = frame.decode()[:200]
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            chat.error = repr(error)
        chat.ended = now()
        return None

    async def close(self) -> None:
        await self._http.close()


@dataclass
class ForgeWorld:
    """An account and a project with conversations to chat in (one chat each)."""

    metadata: tuple[tuple[str, str], ...]
    access_token: str
    project_id: str
    conversations: list[str]


async def forge_world(port: int, conversations: int, email: str) -> ForgeWorld:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        # The first account of a server is its admin: chat as an ordinary project owner.
        await auth.Register(
            auth_pb2.RegisterRequest(email=f"admin-{email}", password=PASSWORD), timeout=60
        )
        registered = await auth.Register(
            auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=60
        )
        token = registered.tokens.access_token
        metadata = (("authorization", f"Bearer {token}"),)
        projects = projects_pb2_grpc.ProjectServiceStub(channel)
        project = await projects.CreateProject(
            projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="bench")),
            metadata=metadata,
            timeout=60,
        )
        agents = agents_pb2_grpc.AgentServiceStub(channel)
        ids: list[str] = []
        semaphore = asyncio.Semaphore(32)

        async def create() -> None:
            async with semaphore:
                created = await agents.CreateConversation(
                    agents_pb2.CreateConversationRequest(
                        project_id=project.id, conversation=agents_pb2.Conversation()
                    ),
                    metadata=metadata,
                    timeout=120,
                )
                ids.append(created.id)

        await asyncio.gather(*(create() for _ in range(conversations)))
    return ForgeWorld(metadata, token, project.id, ids)


def describe_errors(chats: Sequence[Chat]) -> dict[str, Any]:
    errors = [chat.error for chat in chats if chat.error]
    return {"errors": len(errors), "first_error": errors[0] if errors else ""}
