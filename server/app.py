"""Builds and runs the grpc.aio server: database, interceptors, servicers, health, reflection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from server.config import Settings
from server.core.call_policy import CallPolicy
from server.core.cancels import Cancels, cancel_dsn
from server.core.health_service import HealthService
from server.core.holds import Holds
from server.core.hooks import Hooks
from server.core.idempotency import IdempotencyStore
from server.core.idempotent_calls import IdempotentCalls
from server.core.interceptor import CallInterceptor
from server.core.keys import server_secret
from server.core.limits import UserShares
from server.core.metrics import Metrics, MetricsEndpoint, database_pool_usage, measuring
from server.core.module import Background, BuildContext, ModuleBuilder, ServiceModule
from server.core.pagination import PageTokens
from server.core.service_identity import ServiceIdentities
from server.core.shutdown import ShutdownSignal, serving_under
from server.core.stream_shares import StreamShares
from server.core.tls import bind_port
from server.db.embedded import EmbeddedPostgres, open_database
from server.db.engine import dispose, make_engine, make_session_factory
from server.db.health import DatabaseHealth
from server.db.migrate import upgrade_if_behind
from server.services import SERVICE_MODULES

if TYPE_CHECKING:
    # The OpenTelemetry SDK is imported only by a server that traces (start()).
    from opentelemetry.sdk.trace import SpanProcessor

    from server.core.tracing import Tracing

log = logging.getLogger(__name__)

STREAM_END_MARGIN_SECONDS = 1.0
"""How long before the grace period runs out open streams are ended (at most half of it)."""


def grpc_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", settings.keepalive_min_client_ping_ms),
        ("grpc.http2.max_pings_without_data", 0),
        # Two servers must never share a port by accident; the workers of one supervisor
        # (server/workers.py) share theirs on purpose, and the kernel spreads connections.
        ("grpc.so_reuseport", 1 if settings.worker_index is not None else 0),
        # Accept bursts of new calls (the default refuses above about 1,500 pending).
        ("grpc.server.max_pending_requests", settings.max_pending_requests),
        ("grpc.server.max_pending_requests_hard_limit", settings.max_pending_requests),
        # Without BDP probing the per-stream receive window stays small, so a client
        # uploading faster than the blob store writes is held back by flow control instead
        # of being buffered in server memory; lookahead keeps fast links busy.
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", settings.http2_lookahead_bytes),
    ]


def build_modules(ctx: BuildContext, builders: Iterable[ModuleBuilder]) -> list[ServiceModule]:
    """Builds every module, then installs what each offers into the shared hooks."""
    modules = [build(ctx) for build in builders]
    for module in modules:
        ctx.hooks.install(module.offers)
    return modules


class GenericHandlersOnly:
    """What the generated add_*_to_server functions are given instead of the server: their
    generic handlers are added, their "registered methods" are not.

    grpc.aio keeps one pending request future per registered method and, for every call that
    arrives, awaits asyncio.wait over all of them: with Forge's ~85 methods that is ~85
    done-callbacks added and removed per call, about 20 µs of CPU (measured with
    bench/bench_unary.py). Generic handlers are served from one pending future and found by
    a lookup per service."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        pass


@dataclass
class ForgeServer:
    """The running application. `start()` brings it up; `stop()` drains and tears it down."""

    settings: Settings
    builders: Sequence[ModuleBuilder] = SERVICE_MODULES
    """The modules to serve; tests add their own to these."""
    port: int = 0
    modules: list[ServiceModule] = field(default_factory=list)
    health: HealthService = field(default_factory=HealthService)
    shutdown: ShutdownSignal = field(default_factory=ShutdownSignal)
    """Triggered a little before the grace period of `stop()` runs out: open streams end
    with SERVER_SHUTTING_DOWN (server/core/streaming.py)."""
    _server: grpc.aio.Server | None = None
    _engine: AsyncEngine | None = None
    _postgres: EmbeddedPostgres | None = None
    _service_names: list[str] = field(default_factory=list)
    _background: list[Background] = field(default_factory=list)
    _drain_cut: asyncio.Event = field(default_factory=asyncio.Event)
    _database: DatabaseHealth | None = None
    _backends_up: dict[str, bool] = field(default_factory=dict)
    """Per service with a backend of its own (e.g. Docker): whether the backend is up."""
    metrics: Metrics | None = None
    """This server's Prometheus registry (server/core/metrics.py); None: metrics off."""
    metrics_endpoint: MetricsEndpoint | None = None
    span_processors: Sequence[SpanProcessor] = ()
    """Where this server's spans also go (tests); traces are on with these or an OTLP
    endpoint (server/core/tracing.py)."""
    tracing: Tracing | None = None

    async def start(self) -> None:
        settings = self.settings
        if settings.otlp_endpoint or self.span_processors:
            from server.core.tracing import Tracing

            self.tracing = Tracing(
                settings.service_name,
                settings.trace_sample_ratio,
                settings.otlp_endpoint or None,
                settings.otlp_insecure,
                self.span_processors,
            )
            await self.tracing.start()
            self._background.append(self.tracing)
        if settings.metrics_address:  # (empty: off, like unset)
            metrics = self.metrics = Metrics()
            metrics.labelled_gauge(
                "forge_db_pool_connections",
                "database pool connections by state (checked_out, idle, overflow, size)",
                "state",
                lambda: database_pool_usage(self._engine),
            )
            endpoint = self.metrics_endpoint = MetricsEndpoint(
                metrics, settings.metrics_address, settings.event_loop_lag_interval_seconds
            )
            await endpoint.start()
            self._background.append(endpoint)
        # What starts below (modules, their tasks, the calls) finds this server's metrics.
        with measuring(self.metrics):
            await self._start()

    async def _start(self) -> None:
        settings = self.settings
        self._engine = await self._open_database()
        if settings.migrate_on_start:
            await upgrade_if_behind(self._engine)
        secret = server_secret(settings)
        sessions = make_session_factory(self._engine)
        ctx = BuildContext(
            settings=settings,
            sessions=sessions,
            secret=secret,
            page_tokens=PageTokens(secret),
            hooks=Hooks(),
            idempotency=IdempotencyStore(
                sessions,
                secret,
                ttl_seconds=settings.idempotency_ttl_seconds,
                lease_seconds=settings.idempotency_lease_seconds,
                wait_seconds=settings.idempotency_wait_seconds,
            ),
            cancels=Cancels(cancel_dsn(self._engine.url)),
            holds=Holds(sessions, settings.process_lease_seconds),
        )
        self.modules = build_modules(ctx, self.builders)
        # Health follows the database too: it starts first and stops last.
        self._database = DatabaseHealth(self._engine, settings.database_probe_seconds)
        idempotent_calls = IdempotentCalls.of(
            ctx.idempotency,
            [b.descriptor for m in self.modules for b in m.bindings],
            [
                path
                for m in self.modules
                for b in m.bindings
                for path in b.replayed_by_servicer_paths()
            ],
        )
        streams = StreamShares(UserShares(ctx.hooks.limits, settings), ctx.holds)
        server = self._build_server(self.modules, idempotent_calls, streams)
        await self._database.start()
        self._background.append(self._database)
        await idempotent_calls.start()
        self._background.append(idempotent_calls)
        await ctx.cancels.start()
        self._background.append(ctx.cancels)
        await ctx.holds.start()
        self._background.append(ctx.holds)
        for module in self.modules:
            for component in module.background:
                await component.start()
                self._background.append(component)
        host, port = settings.listen_host_port
        self.port = bind_port(server, f"{host}:{port}", settings)  # TLS when configured
        if self.port == 0:
            raise RuntimeError(f"could not bind {settings.listen_address}")
        self._server = server
        # The calls run in copies of this context: their streams find the signal there.
        with serving_under(self.shutdown):
            await server.start()
        await self._set_serving("", True)
        for module in self.modules:
            names = [binding.full_name for binding in module.bindings]
            # A service with a backend of its own starts NOT_SERVING until the backend answers.
            for name in names:
                await self._set_serving(name, module.health is None)
            if module.health is not None:
                self._backends_up.update(dict.fromkeys(names, False))
                module.health(partial(self._set_services_serving, names))
        # (told at once if a probe already found the database gone)
        self._database.follow(self._follow_database)
        log.info(
            "serving", extra={"address": f"{host}:{self.port}", "services": self._service_names}
        )

    def _build_server(
        self,
        modules: Sequence[ServiceModule],
        idempotent_calls: IdempotentCalls,
        streams: StreamShares,
    ) -> grpc.aio.Server:
        bindings = [binding for module in modules for binding in module.bindings]
        authenticators = [m.authenticator for m in modules if m.authenticator is not None]
        if len(authenticators) > 1:
            raise RuntimeError("more than one module offers an authenticator")
        policy = CallPolicy(
            public=[path for b in bindings for path in b.public_paths()],
            unimplemented=[path for b in bindings for path in b.unimplemented_paths()],
            caller_if_given=[path for b in bindings for path in b.caller_if_given_paths()],
            state_read_by_handler=[
                path for b in bindings for path in b.state_read_by_handler_paths()
            ],
        )
        server = grpc.aio.server(
            interceptors=[
                *([self.tracing.interceptor()] if self.tracing else []),  # the span first
                CallInterceptor(
                    policy,
                    next(iter(authenticators), None),
                    trusted_proxies=self.settings.trusted_proxies,
                    on_database_unavailable=self._database.poke if self._database else None,
                    idempotency=idempotent_calls,
                    stream_shares=streams,
                    metrics=self.metrics,
                    services=ServiceIdentities(self.settings.tls_service_identities),
                    admissions={
                        path: gate for b in bindings for path, gate in b.admitted_paths().items()
                    },
                ),
            ],
            options=grpc_options(self.settings),
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs,
        )
        handlers: Any = GenericHandlersOnly(server)  # stands in for the server (duck-typed)
        for binding in bindings:
            binding.add_to_server(binding.servicer, handlers)
        self._service_names = [b.full_name for b in bindings]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, handlers)
        if self.settings.reflection_enabled:
            # (what reflection.enable_server_reflection does for a grpc.aio server)
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
                reflection.aio.ReflectionServicer(
                    [
                        *self._service_names,
                        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                        reflection.SERVICE_NAME,
                    ]
                ),
                handlers,
            )
        return server

    async def _set_services_serving(self, services: Iterable[str], serving: bool) -> None:
        """A module's backend came or went; its services serve when the database does too."""
        database_up = self._database is None or self._database.available is not False
        for service in services:
            self._backends_up[service] = serving
            await self._set_serving(service, serving and database_up)

    async def _follow_database(self, available: bool) -> None:
        await self._set_serving("", available)
        for service in self._service_names:
            await self._set_serving(service, available and self._backends_up.get(service, True))

    async def _set_serving(self, service: str, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse
        await self.health.set(service, status.SERVING if serving else status.NOT_SERVING)

    async def _open_database(self) -> AsyncEngine:
        settings = self.settings
        url, self._postgres = await open_database(settings)
        return make_engine(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            read_lane=settings.read_lane_connections,
        )

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Health goes NOT_SERVING at once; new calls are still accepted for `drain` seconds
        (so load balancers see it and stop sending), then refused, and in-flight calls get
        `grace` seconds. Streams still open shortly before the grace runs out end with an
        in-band SERVER_SHUTTING_DOWN error while it can still be sent."""
        settings = self.settings
        grace = settings.shutdown_grace_seconds if grace is None else grace
        drain = settings.shutdown_drain_seconds if drain is None else drain
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            if drain > 0:
                log.info("draining", extra={"drain_seconds": drain})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drain_cut.wait(), drain)
            log.info("shutting down", extra={"grace_seconds": grace})
            margin = min(STREAM_END_MARGIN_SECONDS, grace / 2)
            signal_streams = asyncio.get_running_loop().call_later(
                grace - margin, self.shutdown.trigger
            )
            try:
                await self._server.stop(grace)
            finally:
                signal_streams.cancel()
            self._server = None
        while self._background:
            await self._background.pop().stop()
        if self._engine is not None:
            await dispose(self._engine)
            self._engine = None
        if self._postgres is not None:
            await self._postgres.stop()
            self._postgres = None

    def end_drain(self) -> None:
        """Stops the drain delay of a `stop()` in progress (a second SIGTERM or SIGINT)."""
        self._drain_cut.set()

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
