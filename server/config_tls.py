"""Settings of TLS and mutual TLS on the gRPC port, and of service identities; Settings
inherits them."""

from __future__ import annotations

from pydantic_settings import BaseSettings


class TlsSettings(BaseSettings):
    pass
