"""The sync client: `Forge`, on grpcio and the generated sync stubs.

The stubs call a channel of ours that adds what their methods cannot take (credentials,
deadlines), retries UNAVAILABLE for idempotent calls, renews an expired access token once,
and raises ForgeError."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast

import grpc

from forge_client._address import DEFAULT_ADDRESS, parse_address
from forge_client._policy import Attempts, RetryPolicy, Step, is_idempotent, with_request_id
from forge_client._proto.forge.agents import v1 as agents
from forge_client._proto.forge.artifacts import v1 as artifacts
from forge_client._proto.forge.auth import v1 as auth
from forge_client._proto.forge.deployments import v1 as deployments
from forge_client._proto.forge.projects import v1 as projects
from forge_client._proto.forge.sandbox import v1 as sandbox
from forge_client.aio import DEFAULT_STREAM_TIMEOUT, DEFAULT_TIMEOUT
from forge_client.credentials import Credentials
from forge_client.errors import (
    REQUEST_ID_KEY,
    STATUS_DETAILS_KEY,
    Code,
    ForgeError,
    decode_details,
)
from forge_client.streams import RECONNECTS, ends_run

T = TypeVar("T")
Serializer = Callable[[Any], bytes] | None
Deserializer = Callable[[bytes], Any] | None


def _as_forge_error(error: grpc.RpcError) -> ForgeError:
    call = cast(grpc.Call, error)
    details_bin: bytes | None = None
    request_id: str | None = None
    for key, value in call.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            details_bin = value
        elif key == REQUEST_ID_KEY and isinstance(value, str):
            request_id = value
    code = call.code()
    number = code.value[0] if isinstance(code, grpc.StatusCode) else Code.UNKNOWN.value
    return ForgeError(
        Code.of(number), call.details() or "", decode_details(details_bin), request_id
    )


class _Caller:
    def __init__(
        self,
        channel: grpc.Channel,
        credentials: Credentials,
        *,
        timeout: float | None,
        stream_timeout: float | None,
        retry: RetryPolicy,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.channel = channel
        self.credentials = credentials
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.retry = retry
        self.metadata = tuple(metadata)
        self._refresh_lock = threading.Lock()

    def with_options(
        self,
        timeout: float | None,
        stream_timeout: float | None,
        metadata: Sequence[tuple[str, str]],
    ) -> _Caller:
        copy = _Caller(
            self.channel,
            self.credentials,
            timeout=timeout,
            stream_timeout=stream_timeout,
            retry=self.retry,
            metadata=(*self.metadata, *metadata),
        )
        copy._refresh_lock = self._refresh_lock
        return copy

    def _headers(self) -> tuple[tuple[str, str | bytes], ...]:
        return (*self.credentials.metadata(), *self.metadata)

    @staticmethod
    def _remaining(deadline: float | None) -> float | None:
        return None if deadline is None else max(deadline - time.monotonic(), 0.0)

    def _after_failure(self, error: ForgeError, attempts: Attempts, used: str) -> Step:
        step, pause = attempts.after(error, can_refresh=self.credentials.can_refresh)
        if step is Step.REFRESH:
            self.refresh(used)
        elif step is Step.RETRY:
            time.sleep(pause)
        return step

    def refresh(self, used: str = "") -> None:
        with self._refresh_lock:
            if used and self.credentials.access_token != used:
                return
            call = self.channel.unary_unary(
                "/forge.auth.v1.AuthService/RefreshToken",
                auth.RefreshTokenRequest.SerializeToString,
                auth.RefreshTokenResponse.FromString,
            )
            try:
                response = call(
                    auth.RefreshTokenRequest(refresh_token=self.credentials.refresh_token),
                    timeout=self.timeout,
                )
            except grpc.RpcError as error:
                raise _as_forge_error(error) from None
            self.credentials.use(response.tokens)

    def unary_unary(self, method: str, ser: Serializer, de: Deserializer, request: Any) -> Any:
        request = with_request_id(request)
        attempts = Attempts(is_idempotent(method, request), self.retry)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        call = self.channel.unary_unary(method, ser, de)
        while True:
            used = self.credentials.access_token
            try:
                return call(request, timeout=self._remaining(deadline), metadata=self._headers())
            except grpc.RpcError as error:
                failure = _as_forge_error(error)
            if self._after_failure(failure, attempts, used) is Step.RAISE:
                raise failure

    def unary_stream(
        self, method: str, ser: Serializer, de: Deserializer, request: Any
    ) -> Iterator[Any]:
        request = with_request_id(request)
        attempts = Attempts(is_idempotent(method, request), self.retry)
        deadline = None if self.stream_timeout is None else time.monotonic() + self.stream_timeout
        multicallable = self.channel.unary_stream(method, ser, de)
        while True:
            used = self.credentials.access_token
            received = False
            call = multicallable(
                request, timeout=self._remaining(deadline), metadata=self._headers()
            )
            try:
                for message in call:
                    received = True
                    yield message
                return
            except grpc.RpcError as error:
                failure = _as_forge_error(error)
            finally:
                call.cancel()  # the caller stopped early: end the stream on the server too
            if received:
                raise failure
            if self._after_failure(failure, attempts, used) is Step.RAISE:
                raise failure

    def stream_unary(
        self, method: str, ser: Serializer, de: Deserializer, requests: Iterable[Any]
    ) -> Any:
        call = self.channel.stream_unary(method, ser, de)
        try:
            return call(iter(requests), timeout=self.stream_timeout, metadata=self._headers())
        except grpc.RpcError as error:
            raise _as_forge_error(error) from None


class _Channel:
    """What the generated sync stubs need of a channel, routed through a _Caller."""

    def __init__(self, caller: _Caller) -> None:
        self._caller = caller

    def unary_unary(self, method: str, ser: Serializer, de: Deserializer) -> Callable[[Any], Any]:
        return lambda request: self._caller.unary_unary(method, ser, de, request)

    def unary_stream(
        self, method: str, ser: Serializer, de: Deserializer
    ) -> Callable[[Any], Iterator[Any]]:
        return lambda request: self._caller.unary_stream(method, ser, de, request)

    def stream_unary(
        self, method: str, ser: Serializer, de: Deserializer
    ) -> Callable[[Iterable[Any]], Any]:
        return lambda requests: self._caller.stream_unary(method, ser, de, requests)


class Forge:
    """The Forge API, blocking. Use as `with Forge.connect(...) as forge:`.

    `forge.auth`, `.projects`, `.agents`, `.sandbox`, `.artifacts` and `.deployments` are
    the generated sync stubs (every RPC, typed), with credentials, deadlines, retries and ForgeError
    built in; `forge.with_options(timeout=…)` gives the same client with other defaults."""

    def __init__(self, channel: grpc.Channel, caller: _Caller) -> None:
        self._channel = channel
        self._caller = caller
        self.credentials = caller.credentials
        routed = cast(grpc.Channel, _Channel(caller))
        self.auth = auth.AuthServiceSyncStub(routed)
        self.projects = projects.ProjectServiceSyncStub(routed)
        self.agents = agents.AgentServiceSyncStub(routed)
        self.sandbox = sandbox.SandboxServiceSyncStub(routed)
        self.artifacts = artifacts.ArtifactServiceSyncStub(routed)
        self.deployments = deployments.DeploymentServiceSyncStub(routed)

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
    ) -> Forge:
        """A client of the server at `address` (`host:port`, or `https://host` for TLS)."""
        where = parse_address(address, tls)
        channel = (
            grpc.secure_channel(where.target, grpc.ssl_channel_credentials())
            if where.tls
            else grpc.insecure_channel(where.target)
        )
        creds = credentials or Credentials(
            token=token, refresh_token=refresh_token, api_key=api_key
        )
        caller = _Caller(
            channel,
            creds,
            timeout=timeout,
            stream_timeout=stream_timeout,
            retry=retry or RetryPolicy(),
        )
        return cls(channel, caller)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        stream_timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> Forge:
        """The same connection and credentials with other deadlines or extra metadata."""
        caller = self._caller.with_options(
            timeout if timeout is not None else self._caller.timeout,
            stream_timeout if stream_timeout is not None else self._caller.stream_timeout,
            metadata,
        )
        return Forge(self._channel, caller)

    def __enter__(self) -> Forge:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def register(self, email: str, password: str, display_name: str = "") -> auth.User:
        """Creates an account; later calls carry its tokens."""
        response = self.auth.register(
            auth.RegisterRequest(email=email, password=password, display_name=display_name)
        )
        self.credentials.use(response.tokens)
        assert response.user is not None
        return response.user

    def login(self, email: str, password: str) -> auth.User:
        """Signs in; later calls carry the new session's tokens."""
        response = self.auth.login(auth.LoginRequest(email=email, password=password))
        self.credentials.use(response.tokens)
        assert response.user is not None
        return response.user

    def refresh(self) -> None:
        """Renews the access token now (calls also do it themselves when it expires)."""
        self._caller.refresh()

    def chat(
        self, conversation_id: str, content: str, *, model: str = ""
    ) -> Iterator[agents.ChatEvent]:
        """The answer to `content`, event by event (`delta`s of its text, then `completed`)."""
        request = agents.ChatRequest(conversation_id=conversation_id, content=content, model=model)
        yield from self.agents.chat(request)

    def watch_run(self, run_id: str, *, after_seq: int = 0) -> Iterator[agents.RunEvent]:
        """A run's events after `after_seq`, until it ends; a dropped connection
        (UNAVAILABLE) is resumed from the last `seq` seen, without repeats."""
        last, failures = after_seq, 0
        while True:
            try:
                request = agents.WatchRunRequest(run_id=run_id, after_seq=last)
                for event in self.agents.watch_run(request):
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
                time.sleep(self._caller.retry.backoff(failures - 1, error))

    def exec(
        self, sandbox_id: str, command: Sequence[str], **fields: Any
    ) -> Iterator[sandbox.ExecEvent]:
        """Runs `command` in a sandbox: `started`, `stdout`/`stderr` chunks, then `exit`."""
        yield from self.sandbox.exec(
            sandbox.ExecRequest(sandbox_id=sandbox_id, argv=list(command), **fields)
        )
