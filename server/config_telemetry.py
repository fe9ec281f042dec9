"""Settings of metrics (Prometheus) and traces (OpenTelemetry); Settings inherits them."""

from __future__ import annotations

from pydantic_settings import BaseSettings


class TelemetrySettings(BaseSettings):
    pass
