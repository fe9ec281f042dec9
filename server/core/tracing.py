"""Traces (OpenTelemetry): spans for the RPCs, the database queries and the provider HTTP
requests of a call, in one trace that continues a caller's `traceparent`.

OpenTelemetry's tracer provider is process-wide and can be set once, while a process may
run several servers (tests). So the first server with tracing on installs one provider and
the instrumentation (asyncpg, the httpx2 client the provider SDKs use), and each server
adds its own span processors to it while it runs (`Tracing.start`/`stop`); the gRPC server
span comes from an interceptor each traced server puts first. A process whose servers trace
nothing installs nothing and pays nothing: server/app.py imports this module (and with it
the OpenTelemetry SDK and its exporter) only for a server that traces.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import httpx2
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

_lock = threading.Lock()
_installed: _Processors | None = None


class _Processors(SpanProcessor):
    """Hands each span to the processors of the servers tracing now."""

    def __init__(self) -> None:
        self.active: tuple[SpanProcessor, ...] = ()

    def add(self, processor: SpanProcessor) -> None:
        with _lock:
            self.active = (*self.active, processor)

    def remove(self, processor: SpanProcessor) -> None:
        with _lock:
            self.active = tuple(p for p in self.active if p is not processor)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self.active:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self.active:
            processor.on_end(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.active)


def _install(service_name: str, sample_ratio: float) -> _Processors:
    """The process-wide provider and instrumentation, installed by the first traced server
    (its service name and sampling serve the whole process)."""
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        processors = _Processors()
        provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}),
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        )
        provider.add_span_processor(processors)
        trace.set_tracer_provider(provider)
        AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
        _instrument_httpx2(trace.get_tracer("forge.http", tracer_provider=provider))
        _installed = processors
        return processors


Send = Callable[..., Awaitable[httpx2.Response]]


def _instrument_httpx2(tracer: trace.Tracer) -> None:
    """A client span around every request an httpx2 client sends (what the anthropic, openai
    and google-genai SDKs send with, whichever transport carries it: the anthropic and
    openai-compatible providers' is aiohttp), carrying `traceparent` on. The URL is recorded
    without its query, where an API key could be."""
    send: Send = httpx2.AsyncClient.send

    @functools.wraps(send)
    async def traced(
        self: httpx2.AsyncClient, request: httpx2.Request, **options: Any
    ) -> httpx2.Response:
        url = request.url
        attributes: dict[str, str | int] = {
            "http.request.method": request.method,
            "url.full": str(url.copy_with(query=None)),
            "server.address": url.host,
        }
        if url.port is not None:
            attributes["server.port"] = url.port
        with tracer.start_as_current_span(
            f"{request.method}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            inject(request.headers)
            response = await send(self, request, **options)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_status(Status(StatusCode.ERROR))
            return response

    httpx2.AsyncClient.send = traced  # type: ignore[method-assign]


class Tracing:
    """One server's tracing: its span processors (an OTLP exporter when `otlp_endpoint` is
    set, and any a test adds) and the interceptor that opens each call's server span."""

    def __init__(
        self,
        service_name: str,
        sample_ratio: float,
        otlp_endpoint: str | None,
        otlp_insecure: bool,
        extra: Sequence[SpanProcessor] = (),
    ) -> None:
        self._service_name = service_name
        self._sample_ratio = sample_ratio
        self._export: SpanProcessor | None = None
        if otlp_endpoint is not None:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=otlp_insecure)
            self._export = BatchSpanProcessor(exporter)
        self._processors = [*extra, *([self._export] if self._export else [])]
        self._hub: _Processors | None = None

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        """Opens the server span of each call (continuing the caller's traceparent)."""
        self._hub = _install(self._service_name, self._sample_ratio)
        interceptor: Any = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=trace.get_tracer_provider()
        )
        return interceptor  # type: ignore[no-any-return]

    async def start(self) -> None:
        hub = self._hub or _install(self._service_name, self._sample_ratio)
        self._hub = hub
        for processor in self._processors:
            hub.add(processor)

    async def stop(self) -> None:
        if self._hub is None:
            return
        for processor in self._processors:
            self._hub.remove(processor)
        self._hub = None
        if self._export is not None:
            # (flushing blocks on the network: not in the event loop)
            await asyncio.to_thread(self._export.shutdown)
