"""Settings of metrics (Prometheus) and traces (OpenTelemetry); Settings inherits them."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class TelemetrySettings(BaseSettings):
    # --- metrics (Prometheus) --------------------------------------------------------
    metrics_address: str | None = Field(
        None,
        description="host:port serving Prometheus metrics at /metrics (port 0: any free one);"
        " unset: no metrics (make run sets 127.0.0.1:9464)",
    )
    event_loop_lag_interval_seconds: float = Field(
        0.5, gt=0, description="how often the event loop's scheduling delay is measured"
    )
    # --- traces (OpenTelemetry) ------------------------------------------------------
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/gRPC collector receiving traces, e.g. http://127.0.0.1:4317;"
        " unset: no traces are recorded or exported",
    )
    otlp_insecure: bool = Field(True, description="OTLP without TLS (a collector on loopback)")
    trace_sample_ratio: float = Field(
        1.0, ge=0, le=1, description="share of new traces recorded (a caller's decision wins)"
    )
    service_name: str = Field("forge", description="service.name of the traces")
