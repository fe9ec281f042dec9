"""Prometheus metrics: one registry per server, served on a port of its own.

ForgeServer owns a `Metrics` when `metrics_address` is set and binds it (`measuring`) while
it builds its modules, starts their background work and starts its grpc server: calls and
tasks run in copies of that context, so the few places that measure something find it with
`current_metrics()` without every module being handed it. Several servers in one process
(tests) each have their own registry; with metrics off `current_metrics()` is None and the
measuring points cost one context-variable read.

Series are named `forge_*` with their unit in the name and carry low-cardinality labels
only (method, code, provider, source, state, reason, status): never a user, project or
request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
"""As server/llm/history.py estimates tokens (core does not import llm)."""

# Seconds; RPCs range from sub-millisecond reads to minute-long streams.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
# Sandbox commands range from a quick `ls` (10 ms) to an hour-long build.
EXEC_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600)


class Metrics:
    """The registry of one server and every series it exports."""

    def __init__(self) -> None:
        # Imported here: a server without metrics (metrics_address unset) does not load
        # prometheus_client (~1 MB; tests/test_lazy_imports.py).
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.rpcs = Counter(
            "forge_rpc_requests",
            "RPCs finished, by full method name and status code",
            ["method", "code"],
            registry=registry,
        )
        self.rpc_seconds = Histogram(
            "forge_rpc_duration_seconds",
            "time from an RPC's arrival to its status (whole stream for streaming RPCs)",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.streams = Gauge(
            "forge_rpc_active_streams",
            "streaming RPCs open now, by method",
            ["method"],
            registry=registry,
        )
        self.tokens = Counter(
            "forge_relayed_tokens",
            "answer tokens relayed as they streamed (estimated from text), by source and provider",
            ["source", "provider"],
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            "forge_chat_time_to_first_token_seconds",
            "from the start of a chat answer's stream to its first text",
            ["provider"],
            buckets=PROVIDER_BUCKETS,
            registry=registry,
        )
        self.provider_seconds = Histogram(
            "forge_provider_request_duration_seconds",
            "from opening a provider request (retries included) to its first event",
            ["provider"],
            buckets=PROVIDER_BUCKETS,
            registry=registry,
        )
        self.provider_errors = Counter(
            "forge_provider_errors",
            "provider requests that failed, by provider and reason (e.g. PROVIDER_UNAVAILABLE)",
            ["provider", "reason"],
            registry=registry,
        )
        self.loop_lag = Histogram(
            "forge_event_loop_lag_seconds",
            "how late the event loop ran a task scheduled to run at once",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.loop_lag_last = Gauge(
            "forge_event_loop_lag_last_seconds",
            "the event loop's scheduling delay at its last measure",
            registry=registry,
        )
        self.exec_seconds = Histogram(
            "forge_sandbox_exec_duration_seconds",
            "sandbox executions (Exec, RunCode, run tools), from start to end",
            buckets=EXEC_BUCKETS,
            registry=registry,
        )
        self.execs = Counter(
            "forge_sandbox_execs",
            "sandbox executions ended, by exit reason (exited, timeout, idle_timeout, "
            "cancelled, killed, oom_killed, sandbox_lost)",
            ["reason"],
            registry=registry,
        )
        self.runs_ended = Counter(
            "forge_runs_ended",
            "agent runs ended by this process, by status (succeeded, failed, cancelled)",
            ["status"],
            registry=registry,
        )
        self.runs_active = Gauge(
            "forge_runs_active",
            "agent runs this process drives now (it holds their lease)",
            registry=registry,
        )

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time (pool sizes, live sandboxes)."""
        from prometheus_client import Gauge

        Gauge(name, documentation, registry=self.registry).set_function(read)

    def labelled_gauge(
        self,
        name: str,
        documentation: str,
        labels: str | tuple[str, ...],
        read: Callable[[], Mapping[Any, float]],
    ) -> None:
        """A gauge whose labelled values are all read at scrape time: `read()` maps each
        label value (a tuple of them with several labels) to its number."""
        from server.core.metrics_collectors import LabelledGauge

        names = (labels,) if isinstance(labels, str) else labels
        self.registry.register(LabelledGauge(name, documentation, names, read))

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


_current: ContextVar[Metrics | None] = ContextVar("forge_metrics", default=None)


def current_metrics() -> Metrics | None:
    """The metrics of the server serving this call or task; None when metrics are off."""
    return _current.get()


@contextmanager
def measuring(metrics: Metrics | None) -> Iterator[None]:
    """Binds `metrics` for what starts in this block (tasks created copy the binding)."""
    token = _current.set(metrics)
    try:
        yield
    finally:
        _current.reset(token)


class MetricsEndpoint:
    """Serves `GET /metrics` over HTTP and measures the event loop's lag; a Background."""

    def __init__(self, metrics: Metrics, address: str, lag_interval: float) -> None:
        self._metrics = metrics
        host, _, port = address.rpartition(":")
        self._host = host or "127.0.0.1"
        self._port = int(port)
        self._lag_interval = lag_interval
        self._runner: web.AppRunner | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        from aiohttp import web  # (only servers that serve metrics load it)

        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._lag_task = asyncio.create_task(self._measure_lag(), name="event-loop-lag")
        log.info("metrics", extra={"address": f"{self._host}:{self.port}"})

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
            self._lag_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.Response:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST

        body = self._metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._lag_interval
        while True:
            due = loop.time() + interval
            await asyncio.sleep(interval)
            lag = max(0.0, loop.time() - due)
            self._metrics.loop_lag.observe(lag)
            self._metrics.loop_lag_last.set(lag)


def database_pool_usage(engine: AsyncEngine | None) -> dict[str, float]:
    """The SQLAlchemy pool's connections by state, for `forge_db_pool_connections`."""
    pool = engine.sync_engine.pool if engine is not None else None
    if not isinstance(pool, QueuePool):
        return {}
    return {
        "checked_out": pool.checkedout(),
        "idle": pool.checkedin(),
        "overflow": max(0, pool.overflow()),
        "size": pool.size(),
    }


class AnswerMeter:
    """Measures one streamed answer: tokens relayed and (chat) the time to the first."""

    __slots__ = ("_first", "_started", "_tokens", "_ttft")

    def __init__(self, metrics: Metrics, source: str, model: str) -> None:
        provider = model.partition("/")[0] or "unknown"
        self._tokens = metrics.tokens.labels(source, provider)
        self._ttft = metrics.time_to_first_token.labels(provider) if source == "chat" else None
        self._started = time.perf_counter()
        self._first = True

    def text(self, text: str) -> None:
        if self._first:
            self._first = False
            if self._ttft is not None:
                self._ttft.observe(time.perf_counter() - self._started)
        self._tokens.inc(-(-len(text) // CHARS_PER_TOKEN))


def answer_meter(source: str, model: str) -> AnswerMeter | None:
    """A meter for an answer now starting to stream (`source`: chat or run); None when this
    server has no metrics."""
    metrics = _current.get()
    return None if metrics is None else AnswerMeter(metrics, source, model)


def provider_request(provider: str, seconds: float, error_reason: str | None = None) -> None:
    """Records one provider request: how long until its first event (or its failure)."""
    metrics = _current.get()
    if metrics is None:
        return
    metrics.provider_seconds.labels(provider).observe(seconds)
    if error_reason is not None:
        metrics.provider_errors.labels(provider, error_reason).inc()


def provider_failed(provider: str, error_reason: str) -> None:
    """A provider stream that failed after its first event."""
    metrics = _current.get()
    if metrics is not None:
        metrics.provider_errors.labels(provider, error_reason).inc()


def execution_ended(reason: str, seconds: float) -> None:
    """Records one sandbox execution's end: its exit reason and how long it ran."""
    metrics = _current.get()
    if metrics is not None:
        metrics.execs.labels(reason).inc()
        metrics.exec_seconds.observe(seconds)


def run_ended(status: str) -> None:
    """An agent run this process brought to a terminal status."""
    metrics = _current.get()
    if metrics is not None:
        metrics.runs_ended.labels(status).inc()


def runs_driven(count: Callable[[], int]) -> None:
    """`forge_runs_active` reads `count` at scrape time (the runs this process drives)."""
    metrics = _current.get()
    if metrics is not None:
        metrics.runs_active.set_function(count)
