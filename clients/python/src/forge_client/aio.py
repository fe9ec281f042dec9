"""The async client: `AsyncForge`, on grpclib and the generated async stubs.

Every call carries the credentials and a deadline; UNAVAILABLE is retried for idempotent
calls; an expired access token is renewed once with the refresh token; failures raise
ForgeError."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.encoding.base import StatusDetailsCodecBase
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.metadata import Deadline

from forge_client._address import DEFAULT_ADDRESS, parse_address
from forge_client._policy import Attempts, RetryPolicy, Step, is_idempotent, with_request_id
from forge_client._proto.forge.agents import v1 as agents
from forge_client._proto.forge.artifacts import v1 as artifacts
from forge_client._proto.forge.auth import v1 as auth
from forge_client._proto.forge.deployments import v1 as deployments
from forge_client._proto.forge.projects import v1 as projects
from forge_client._proto.forge.sandbox import v1 as sandbox
from forge_client.credentials import Credentials
from forge_client.errors import REQUEST_ID_KEY, Code, ErrorDetails, ForgeError, decode_details
from forge_client.streams import RECONNECTS, ends_run

T = TypeVar("T")
Metadata = Sequence[tuple[str, str | bytes]]

DEFAULT_TIMEOUT = 30.0
"""Seconds a unary call may take, retries included."""
DEFAULT_STREAM_TIMEOUT = 900.0
"""Seconds a streaming call (chat, exec, one connection of watch_run) may take."""


class _DetailsCodec(StatusDetailsCodecBase):
    """Decodes `grpc-status-details-bin` into ErrorDetails (grpclib's own codec needs
    googleapis-common-protos, and returns protobuf objects)."""

    def encode(self, status: Status, message: str | None, details: Any) -> bytes:
        raise NotImplementedError("a client does not send status details")

    def decode(self, status: Status, message: str | None, data: bytes) -> ErrorDetails:
        return decode_details(data)


def _as_forge_error(error: Exception, stream: Stream[Any, Any] | None) -> ForgeError | None:
    trailers = getattr(stream, "trailing_metadata", None) or {}
    request_id = trailers.get(REQUEST_ID_KEY)
    request_id = request_id if isinstance(request_id, str) else None
    if isinstance(error, GRPCError):
        details = error.details if isinstance(error.details, ErrorDetails) else None
        return ForgeError(Code.of(error.status.value), error.message or "", details, request_id)
    if isinstance(error, asyncio.TimeoutError):
        return ForgeError(Code.DEADLINE_EXCEEDED, "the deadline passed", None, request_id)
    if isinstance(error, StreamTerminatedError | ConnectionError | OSError):
        return ForgeError(Code.UNAVAILABLE, f"connection failed: {error}", None, request_id)
    return None


class _Caller:
    """Runs calls for the stubs: credentials, deadlines, retries, refresh, errors."""

    def __init__(
        self,
        channel: Channel,
        credentials: Credentials,
        *,
        timeout: float | None,
        stream_timeout: float | None,
        retry: RetryPolicy,
    ) -> None:
        self.channel = channel
        self.credentials = credentials
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.retry = retry
        self._refresh_lock = asyncio.Lock()

    def _deadline(
        self, timeout: float | None, deadline: Deadline | None, default: float | None
    ) -> Deadline | None:
        if deadline is not None:
            return deadline
        seconds = timeout if timeout is not None else default
        return Deadline.from_timeout(seconds) if seconds is not None else None

    def _metadata(self, extra: Any) -> list[tuple[str, str | bytes]]:
        headers: list[tuple[str, str | bytes]] = list(self.credentials.metadata())
        if extra:
            items = extra.items() if hasattr(extra, "items") else extra
            headers.extend((str(key), value) for key, value in items)
        return headers

    async def _after_failure(self, error: ForgeError, attempts: Attempts, used: str) -> Step:
        step, pause = attempts.after(error, can_refresh=self.credentials.can_refresh)
        if step is Step.REFRESH:
            await self.refresh(used)
        elif step is Step.RETRY:
            await asyncio.sleep(pause)
        return step

    async def refresh(self, used: str = "") -> None:
        """Renews the access token, unless another call already did since `used`."""
        async with self._refresh_lock:
            if used and self.credentials.access_token != used:
                return
            request = auth.RefreshTokenRequest(refresh_token=self.credentials.refresh_token)
            stream = self.channel.request(
                "/forge.auth.v1.AuthService/RefreshToken",
                Cardinality.UNARY_UNARY,
                auth.RefreshTokenRequest,
                auth.RefreshTokenResponse,
                deadline=self._deadline(None, None, self.timeout),
            )
            try:
                async with stream:
                    await stream.send_message(request, end=True)
                    response = await stream.recv_message()
            except Exception as error:
                failure = _as_forge_error(error, stream)
                if failure is None:
                    raise
                raise failure from error
            assert response is not None
            self.credentials.use(response.tokens)

    async def unary_unary(
        self,
        route: str,
        request: Any,
        response_type: type[T],
        timeout: float | None,
        deadline: Deadline | None,
        metadata: Any,
    ) -> T:
        request = with_request_id(request)
        attempts = Attempts(is_idempotent(route, request), self.retry)
        deadline = self._deadline(timeout, deadline, self.timeout)
        while True:
            used = self.credentials.access_token
            stream = self.channel.request(
                route,
                Cardinality.UNARY_UNARY,
                type(request),
                response_type,
                deadline=deadline,
                metadata=self._metadata(metadata),
            )
            try:
                async with stream:
                    await stream.send_message(request, end=True)
                    response: T | None = await stream.recv_message()
                assert response is not None
                return response
            except Exception as error:
                failure = _as_forge_error(error, stream)
                if failure is None:
                    raise
                if await self._after_failure(failure, attempts, used) is Step.RAISE:
                    raise failure from error

    async def unary_stream(
        self,
        route: str,
        request: Any,
        response_type: type[T],
        timeout: float | None,
        deadline: Deadline | None,
        metadata: Any,
    ) -> AsyncIterator[T]:
        """Retried (or re-authenticated) only until the first message arrives."""
        request = with_request_id(request)
        attempts = Attempts(is_idempotent(route, request), self.retry)
        deadline = self._deadline(timeout, deadline, self.stream_timeout)
        while True:
            used = self.credentials.access_token
            received = False
            stream = self.channel.request(
                route,
                Cardinality.UNARY_STREAM,
                type(request),
                response_type,
                deadline=deadline,
                metadata=self._metadata(metadata),
            )
            try:
                async with stream:
                    await stream.send_message(request, end=True)
                    async for message in stream:
                        received = True
                        yield message
                return
            except Exception as error:
                failure = _as_forge_error(error, stream)
                if failure is None:
                    raise
                if received:
                    raise failure from error
                if await self._after_failure(failure, attempts, used) is Step.RAISE:
                    raise failure from error

    async def stream_unary(
        self,
        route: str,
        requests: Any,
        request_type: type[Any],
        response_type: type[T],
        timeout: float | None,
        deadline: Deadline | None,
        metadata: Any,
    ) -> T:
        """Client streams are not replayable: never retried."""
        stream = self.channel.request(
            route,
            Cardinality.STREAM_UNARY,
            request_type,
            response_type,
            deadline=self._deadline(timeout, deadline, self.stream_timeout),
            metadata=self._metadata(metadata),
        )
        try:
            async with stream:
                await stream.send_request()
                if hasattr(requests, "__aiter__"):
                    async for message in requests:
                        await stream.send_message(message)
                else:
                    for message in requests:
                        await stream.send_message(message)
                await stream.end()
                response: T | None = await stream.recv_message()
        except Exception as error:
            failure = _as_forge_error(error, stream)
            if failure is None:
                raise
            raise failure from error
        assert response is not None
        return response


class _Calls:
    """Routes a generated stub's calls through a _Caller (mixed in before the stub)."""

    _caller: _Caller

    async def _unary_unary(
        self,
        route: str,
        request: Any,
        response_type: type[T],
        *,
        timeout: float | None = None,
        deadline: Deadline | None = None,
        metadata: Any = None,
    ) -> T:
        return await self._caller.unary_unary(
            route, request, response_type, timeout, deadline, metadata
        )

    async def _unary_stream(
        self,
        route: str,
        request: Any,
        response_type: type[T],
        *,
        timeout: float | None = None,
        deadline: Deadline | None = None,
        metadata: Any = None,
    ) -> AsyncIterator[T]:
        async for message in self._caller.unary_stream(
            route, request, response_type, timeout, deadline, metadata
        ):
            yield message

    async def _stream_unary(
        self,
        route: str,
        request_iterator: Any,
        request_type: type[Any],
        response_type: type[T],
        *,
        timeout: float | None = None,
        deadline: Deadline | None = None,
        metadata: Any = None,
    ) -> T:
        return await self._caller.stream_unary(
            route, request_iterator, request_type, response_type, timeout, deadline, metadata
        )


class AuthService(_Calls, auth.AuthServiceStub):
    """forge.auth.v1.AuthService (async)."""


class ProjectService(_Calls, projects.ProjectServiceStub):
    """forge.projects.v1.ProjectService (async)."""


class AgentService(_Calls, agents.AgentServiceStub):
    """forge.agents.v1.AgentService (async)."""


class SandboxService(_Calls, sandbox.SandboxServiceStub):
    """forge.sandbox.v1.SandboxService (async)."""


class ArtifactService(_Calls, artifacts.ArtifactServiceStub):
    """forge.artifacts.v1.ArtifactService (async)."""


class DeploymentService(_Calls, deployments.DeploymentServiceStub):
    """forge.deployments.v1.DeploymentService (async)."""


StubT = TypeVar("StubT", bound=_Calls)


class AsyncForge:
    """The Forge API, async. Use as `async with AsyncForge.connect(...) as forge:`.

    `forge.auth`, `.projects`, `.agents`, `.sandbox`, `.artifacts` and `.deployments` are
    the generated stubs (every RPC, typed), with credentials, deadlines, retries and
    ForgeError built in; each call still takes `timeout=` and `metadata=`."""

    def __init__(
        self,
        channel: Channel,
        credentials: Credentials,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.credentials = credentials
        self._channel = channel
        self._caller = _Caller(
            channel,
            credentials,
            timeout=timeout,
            stream_timeout=stream_timeout,
            retry=retry or RetryPolicy(),
        )
        self.auth = self._stub(AuthService)
        self.projects = self._stub(ProjectService)
        self.agents = self._stub(AgentService)
        self.sandbox = self._stub(SandboxService)
        self.artifacts = self._stub(ArtifactService)
        self.deployments = self._stub(DeploymentService)

    @classmethod
    def connect(
        cls,
        address: str = DEFAULT_ADDRESS,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        api_key: str | None = None,
        credentials: Credentials | None = None,
        tls: bool | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> AsyncForge:
        """A client of the server at `address` (`host:port`, or `https://host` for TLS).
        The connection opens on the first call."""
        where = parse_address(address, tls)
        channel = Channel(
            where.host, where.port, ssl=where.tls, status_details_codec=_DetailsCodec()
        )
        creds = credentials or Credentials(
            token=token, refresh_token=refresh_token, api_key=api_key
        )
        return cls(channel, creds, timeout=timeout, stream_timeout=stream_timeout, retry=retry)

    def _stub(self, kind: type[StubT]) -> StubT:
        stub = kind(self._channel)  # type: ignore[call-arg]
        stub._caller = self._caller
        return stub

    async def __aenter__(self) -> AsyncForge:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    # --- signing in ---------------------------------------------------------------------

    async def register(self, email: str, password: str, display_name: str = "") -> auth.User:
        """Creates an account; later calls carry its tokens."""
        response = await self.auth.register(
            auth.RegisterRequest(email=email, password=password, display_name=display_name)
        )
        self.credentials.use(response.tokens)
        assert response.user is not None
        return response.user

    async def login(self, email: str, password: str) -> auth.User:
        """Signs in; later calls carry the new session's tokens."""
        response = await self.auth.login(auth.LoginRequest(email=email, password=password))
        self.credentials.use(response.tokens)
        assert response.user is not None
        return response.user

    async def refresh(self) -> None:
        """Renews the access token now (calls also do it themselves when it expires)."""
        await self._caller.refresh()

    # --- streams --------------------------------------------------------------------------

    async def chat(
        self,
        conversation_id: str,
        content: str,
        *,
        model: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[agents.ChatEvent]:
        """The answer to `content`, event by event (`delta`s of its text, then `completed`)."""
        request = agents.ChatRequest(conversation_id=conversation_id, content=content, model=model)
        async for event in self.agents.chat(request, timeout=timeout):
            yield event

    async def watch_run(
        self, run_id: str, *, after_seq: int = 0, timeout: float | None = None
    ) -> AsyncIterator[agents.RunEvent]:
        """A run's events after `after_seq`, until it ends. A dropped connection
        (UNAVAILABLE) is resumed from the last `seq` seen: no event is missed or repeated."""
        last, failures = after_seq, 0
        while True:
            try:
                request = agents.WatchRunRequest(run_id=run_id, after_seq=last)
                async for event in self.agents.watch_run(request, timeout=timeout):
                    failures = 0
                    if event.seq <= last:
                        continue
                    last = event.seq
                    yield event
                    if ends_run(event):
                        return
                return
            except ForgeError as error:
                failures += 1
                if error.code != Code.UNAVAILABLE or failures > RECONNECTS:
                    raise
                await asyncio.sleep(self._caller.retry.backoff(failures - 1, error))

    async def exec(
        self,
        sandbox_id: str,
        command: Sequence[str],
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> AsyncIterator[sandbox.ExecEvent]:
        """Runs `command` in a sandbox: `started`, `stdout`/`stderr` chunks, then `exit`."""
        request = sandbox.ExecRequest(sandbox_id=sandbox_id, argv=list(command), **fields)
        async for event in self.sandbox.exec(request, timeout=timeout):
            yield event
