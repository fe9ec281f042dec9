"""The one server interceptor: request id, caller resolution, error mapping, access log.

Everything per-call happens in a single wrapper so a call pays for one extra frame, not
one per concern; the concerns themselves live in their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias, cast

import grpc

from server.core.admission import Admission
from server.core.call_policy import CallPolicy, client_address
from server.core.context import CallContext, bind_call
from server.core.credentials import Authenticator, extract_credential
from server.core.errors import Code, ForgeError, InvalidArgument, Unauthenticated, Unimplemented
from server.core.holds import Hold
from server.core.idempotent_calls import IdempotentCalls
from server.core.metrics import Metrics
from server.core.scopes import check_api_key_call
from server.core.service_identity import ServiceIdentities, service_caller
from server.core.status import internal_status, to_grpc_status
from server.core.stream_shares import StreamShares
from server.db.unavailable import (
    DATABASE_UNAVAILABLE,
    database_unavailable,
    is_database_unavailable,
    is_unstorable_text,
)

log = logging.getLogger("forge.access")

MAX_REQUEST_ID_LENGTH = 128

# grpc's classes are generic only in its type stubs, hence the string aliases.
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Behavior: TypeAlias = "Callable[[Any, Context], Any]"


def _new_id() -> str:
    """A request id: 128 random bits as 32 hex digits, like uuid4().hex. Only unique, never a
    secret, so the fast PRNG serves (uuid4 reads os.urandom: a system call per call)."""
    return f"{random.getrandbits(128):032x}"


class CallInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        policy: CallPolicy,
        authenticator: Authenticator | None = None,
        trusted_proxies: Iterable[str] = (),
        on_database_unavailable: Callable[[], None] | None = None,
        idempotency: IdempotentCalls | None = None,
        stream_shares: StreamShares | None = None,
        metrics: Metrics | None = None,
        services: ServiceIdentities | None = None,
        admissions: Mapping[str, Admission] | None = None,
    ) -> None:
        """`on_database_unavailable` runs when a call ends because the database could not
        be reached (health probes it at once); `idempotency` runs the calls it covers;
        `admissions` bound the opens of the streaming methods they name (full paths)."""
        self._policy = policy
        self._admissions = dict(admissions or {})
        self._idempotency = idempotency
        self._stream_shares = stream_shares
        self._metrics = metrics
        self._on_database_unavailable = on_database_unavailable
        self._authenticator = authenticator
        self._services = services or None  # (an empty mapping: none)
        self._trusted_proxies = frozenset(trusted_proxies)
        # Handlers are fixed once the server starts, so each method's is wrapped once; what
        # differs per call (metadata, peer) is read from the call's context.
        self._wrapped: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None  # not cached: unknown names are the caller's to invent
            wrapped = self._wrapped[method] = _wrap(handler, self, method)
        return wrapped


def _metadata(context: Context) -> dict[str, str]:
    return {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }


class _CallScope:
    """Runs one call's behavior inside its context, mapping errors and logging the outcome."""

    __slots__ = ("_interceptor", "_metadata", "_method", "_started", "ctx")

    def __init__(self, interceptor: CallInterceptor, method: str, metadata: dict[str, str]) -> None:
        self._interceptor = interceptor
        self._method = method
        self._metadata = metadata
        self._started = 0.0
        self.ctx: CallContext | None = None

    async def enter(
        self, context: Context, admission: Admission | None = None, *, defer_state: bool = False
    ) -> float | None:
        """Binds the call's context and authenticates it; with `admission`, first takes a
        place in it (returning when), so that a refusal under a burst costs next to nothing.
        With `defer_state`, a caller with an access token is left for the handler to confirm
        (core/caller_state.py)."""
        self._started = time.perf_counter()
        request_id = self._metadata.get("x-request-id", "")[:MAX_REQUEST_ID_LENGTH] or _new_id()
        peer = context.peer() or ""
        interceptor = self._interceptor
        ctx = CallContext(
            request_id=request_id,
            method=self._method,
            peer=peer,
            client_address=client_address(peer, self._metadata, interceptor._trusted_proxies),
            user_agent=self._metadata.get("user-agent", ""),
            metadata=self._metadata,
        )
        self.ctx = ctx
        bind_call(ctx)
        context.set_trailing_metadata((("x-request-id", request_id),))
        policy = interceptor._policy
        if self._method in policy.unimplemented:
            raise Unimplemented(f"{self._method} is not implemented yet", "NOT_IMPLEMENTED")
        admitted = await admission.enter() if admission is not None else None
        try:
            await self._authenticate(context, ctx, defer_state)
        except BaseException:
            if admitted is not None and admission is not None:
                admission.leave(admitted)
            raise
        return admitted

    async def _authenticate(self, context: Context, ctx: CallContext, defer_state: bool) -> None:
        interceptor = self._interceptor
        policy = interceptor._policy
        if policy.is_public(self._method):
            if self._method in policy.caller_if_given:
                await self._identify_if_possible(ctx)
            return
        credential = extract_credential(self._metadata)
        if credential is None:
            # No token or API key: a service, by its client certificate (mutual TLS).
            services = interceptor._services
            certificate = context.auth_context() if services else {}
            ctx.caller = service_caller(services, certificate, self._method)
            return
        authenticator = interceptor._authenticator
        if authenticator is None:
            raise Unauthenticated("credentials cannot be verified", "TOKEN_INVALID")
        if defer_state:
            ctx.unconfirmed = authenticator.unconfirmed(credential)
            if ctx.unconfirmed is not None:
                return
        caller = ctx.caller = await authenticator.authenticate(credential)
        if caller.scopes is not None:
            check_api_key_call(self._method, caller.scopes)

    async def _identify_if_possible(self, ctx: CallContext) -> None:
        """A public call sent with credentials: the caller if they are valid (e.g. Logout
        with only an access token); with invalid ones the call goes on anonymous."""
        credential = extract_credential(self._metadata)
        authenticator = self._interceptor._authenticator
        if credential is None or authenticator is None:
            return
        with contextlib.suppress(Unauthenticated):
            ctx.caller = await authenticator.authenticate(credential)

    async def confirm_caller(self) -> None:
        """A caller its handler left unconfirmed (a handler should not) is confirmed now,
        before anything is answered: UNAUTHENTICATED if its account may no longer call."""
        ctx = self.ctx
        authenticator = self._interceptor._authenticator
        if ctx is not None and ctx.unconfirmed is not None and authenticator is not None:
            ctx.confirm(await authenticator.confirm(ctx.unconfirmed))

    async def fail(self, context: Context, error: BaseException) -> None:
        """Ends the call with the status for `error` (always raises)."""
        if self.ctx is not None and self.ctx.unconfirmed is not None:
            # Whatever went wrong, a caller who may no longer call learns only that; one
            # whose state cannot be read (the database is away) only why.
            try:
                await self.confirm_caller()
            except Exception as unconfirmed:
                error = unconfirmed
        request_id = self.ctx.request_id if self.ctx else "-"
        if not isinstance(error, ForgeError) and is_database_unavailable(error):
            error = database_unavailable(cause=error)
        elif not isinstance(error, ForgeError) and is_unstorable_text(error):
            # A text field no check caught holds a NUL, which PostgreSQL cannot store.
            error = InvalidArgument(
                "a text field holds a character that cannot be stored (NUL)", "INVALID_TEXT"
            )
        elif isinstance(error, NotImplementedError):
            # grpc's generated base servicers raise it for an RPC nobody built.
            error = Unimplemented(f"{self._method} is not implemented", "NOT_IMPLEMENTED")
        if isinstance(error, ForgeError):
            if error.reason == DATABASE_UNAVAILABLE:
                self._database_unavailable(request_id, error)
            self.finish(error.code.name, error.reason)
            await context.abort_with_status(_with_request_id(to_grpc_status(error), request_id))
        log.exception(
            "unhandled error",
            extra={"method": self._method, "request_id": request_id},
            exc_info=error,
        )
        self.finish(Code.INTERNAL.name, "INTERNAL")
        await context.abort_with_status(_with_request_id(internal_status(request_id), request_id))

    def _database_unavailable(self, request_id: str, error: ForgeError) -> None:
        # One line per call, no traceback: an outage must not flood the log.
        cause = error.__cause__
        log.warning(
            "database unavailable",
            extra={
                "method": self._method,
                "request_id": request_id,
                "error": repr(cause if cause is not None else error),
            },
        )
        notify = self._interceptor._on_database_unavailable
        if notify is not None:
            notify()

    def finish(self, code: str, reason: str = "") -> None:
        ctx = self.ctx
        metrics = self._interceptor._metrics
        if metrics is not None:
            metrics.rpcs.labels(self._method, code).inc()
            metrics.rpc_seconds.labels(self._method).observe(time.perf_counter() - self._started)
        if ctx is None or not log.isEnabledFor(logging.INFO):
            return
        log.info(
            "rpc",
            extra={
                "method": self._method,
                "code": code,
                "reason": reason,
                "duration_ms": round((time.perf_counter() - self._started) * 1000, 3),
                "peer": ctx.client_address,
                "user_id": str(ctx.caller.user_id) if ctx.caller else None,
                "service": ctx.caller.service if ctx.caller else None,
                "request_id": ctx.request_id,
            },
        )


def _with_request_id(status: grpc.Status, request_id: str) -> grpc.Status:
    """`status` also carrying x-request-id: aborting with a status replaces the trailers the
    call had set."""
    trailers = (*(status.trailing_metadata or ()), ("x-request-id", request_id))
    return cast(grpc.Status, status._replace(trailing_metadata=trailers))  # type: ignore[attr-defined]


class _Undecodable:
    """A request whose bytes are not its message (grpc would answer INTERNAL for it)."""

    __slots__ = ()


_UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            return _UNDECODABLE

    return deserialize


def _malformed() -> InvalidArgument:
    return InvalidArgument(
        "the request is not a valid message of its type (corrupt wire format or invalid UTF-8)",
        "MALFORMED_REQUEST",
    )


def _checked(request: Any) -> Any:
    if request is _UNDECODABLE:
        raise _malformed()
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _checked(request)


def _is_passthrough(error: BaseException) -> bool:
    # abort() already set the status; let grpc finish the call with it.
    return isinstance(error, grpc.aio.AbortError)


def _wrap(handler: Handler, interceptor: CallInterceptor, method: str) -> Handler:
    # grpc's stubs type behaviors as synchronous; under grpc.aio they are coroutines or
    # async generators.
    idempotency = interceptor._idempotency
    if idempotency is not None and not idempotency.covers(method):
        idempotency = None
    if handler.unary_unary:
        behavior = cast(Behavior, handler.unary_unary)
        if idempotency is not None:
            behavior = _with_request_ids(behavior, idempotency, method)

        defer_state = method in interceptor._policy.state_read_by_handler

        async def unary_unary(request: Any, context: Context) -> Any:
            scope = _CallScope(interceptor, method, _metadata(context))
            try:
                await scope.enter(context, defer_state=defer_state)
                response = await behavior(_checked(request), context)
                if defer_state:
                    await scope.confirm_caller()
            except asyncio.CancelledError:
                scope.finish("CANCELLED")
                raise
            except Exception as error:
                if _is_passthrough(error):
                    raise
                await scope.fail(context, error)
            scope.finish("OK")
            return response

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(
                cast(Behavior, handler.unary_stream), interceptor, method, False, idempotency
            ),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary:
        behavior_su = cast(Behavior, handler.stream_unary)

        async def stream_unary(requests: Any, context: Context) -> Any:
            scope = _CallScope(interceptor, method, _metadata(context))
            try:
                await scope.enter(context)
                response = await behavior_su(_checked_stream(requests), context)
            except asyncio.CancelledError:
                scope.finish("CANCELLED")
                raise
            except Exception as error:
                if _is_passthrough(error):
                    raise
                await scope.fail(context, error)
            scope.finish("OK")
            return response

        return grpc.stream_unary_rpc_method_handler(
            stream_unary,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    return grpc.stream_stream_rpc_method_handler(
        _streaming(cast(Behavior, handler.stream_stream), interceptor, method, True, None),
        request_deserializer=_tolerant(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


def _with_request_ids(behavior: Behavior, idempotency: IdempotentCalls, method: str) -> Behavior:
    async def unary(request: Any, context: Context) -> Any:
        return await idempotency.unary(method, request, context, lambda: behavior(request, context))

    return unary


def _streaming(
    behavior: Behavior,
    interceptor: CallInterceptor,
    method: str,
    client_streaming: bool,
    idempotency: IdempotentCalls | None,
) -> Callable[..., AsyncIterator[Any]]:
    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        scope = _CallScope(interceptor, method, _metadata(context))
        share: Hold | None = None
        streams = interceptor._metrics.streams.labels(method) if interceptor._metrics else None
        if streams is not None:
            streams.inc()
        admission = interceptor._admissions.get(method)
        admitted: float | None = None
        try:
            admitted = await scope.enter(context, admission)
            # Each user's share of the open streams (core/stream_shares.py).
            caller = scope.ctx.caller if scope.ctx else None
            if interceptor._stream_shares is not None and caller is not None:
                share = await interceptor._stream_shares.take(caller.user_id)
            result = behavior(
                _checked_stream(request) if client_streaming else _checked(request), context
            )
            if idempotency is not None and inspect.isasyncgen(result):
                result = idempotency.stream(method, request, context, result)
            if inspect.isasyncgen(result):
                async for response in result:
                    if admitted is not None and admission is not None:
                        # Open: its first message is out of the servicer.
                        admission.leave(admitted)
                        admitted = None
                    yield response
            else:
                await result
        except asyncio.CancelledError:
            scope.finish("CANCELLED")
            raise
        except Exception as error:
            if _is_passthrough(error):
                raise
            await scope.fail(context, error)
        finally:
            if admitted is not None and admission is not None:
                admission.leave(admitted)
            if share is not None:
                share.release()
            if streams is not None:
                streams.dec()
        scope.finish("OK")

    return stream
