"""One Settings object, read from the environment (prefix FORGE_) or the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Forge server settings. Each option is also read from the environment as
    FORGE_<OPTION> (upper case, underscores), e.g. FORGE_DATABASE_URL."""

    model_config = SettingsConfigDict(
        env_prefix="FORGE_",
        env_file=None,
        extra="ignore",
        cli_prog_name="python -m server",
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )

    # --- serving -----------------------------------------------------------------
    environment: Literal["development", "production"] = Field(
        "development", description="production refuses unsafe defaults (e.g. a missing JWT secret)"
    )
    listen_address: str = Field("0.0.0.0:50051", description="host:port the gRPC server binds")
    data_dir: Path = Field(
        Path(".forge"), description="local state: embedded database, generated secrets, blobs"
    )
    log_level: str = Field("INFO", description="root log level")
    log_format: Literal["json", "text"] = Field("json", description="structured JSON or plain text")
    shutdown_grace_seconds: float = Field(
        10.0, description="on SIGTERM, how long in-flight calls may take before they are cancelled"
    )
    max_message_bytes: int = Field(16 * MiB, description="largest gRPC message sent or received")
    max_concurrent_rpcs: int | None = Field(
        None, description="calls served at once before new ones are refused (None: unlimited)"
    )
    keepalive_time_ms: int = Field(30_000, description="server keepalive ping interval")
    keepalive_timeout_ms: int = Field(10_000, description="keepalive ping ack timeout")
    keepalive_min_client_ping_ms: int = Field(
        10_000, description="shortest ping interval a client may use without being told off"
    )
    enable_reflection: bool = Field(True, description="serve the gRPC reflection API")
    enable_testing_service: bool = Field(
        False, description="serve forge.testing.v1.TestingService (tests and smoke checks)"
    )

    # --- database ------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL; unset: an embedded PostgreSQL with its data under data_dir",
    )
    database_pool_size: int = Field(10, description="connections kept open per process")
    database_max_overflow: int = Field(20, description="extra connections under load")
    migrate_on_start: bool = Field(True, description="run Alembic migrations to head on start")

    # --- auth ----------------------------------------------------------------------
    jwt_secret: SecretStr | None = Field(
        None,
        description="HMAC secret for access tokens (>= 32 bytes); "
        "unset in development: generated once under data_dir",
    )
    jwt_issuer: str = Field("forge", description="iss claim")
    jwt_audience: str = Field("forge-api", description="aud claim")
    access_token_ttl_seconds: int = Field(15 * 60, description="access token lifetime")
    refresh_token_ttl_seconds: int = Field(7 * 24 * 3600, description="session lifetime")
    bcrypt_rounds: int = Field(12, ge=4, le=16, description="bcrypt cost factor")
    admin_emails: list[str] = Field(
        default_factory=list, description="emails that become admin on registration"
    )
    smtp_url: SecretStr | None = Field(
        None, description="smtp://user:pass@host:port for outgoing mail; unset: mail is logged"
    )
    mail_from: str = Field("Forge <no-reply@forge.local>", description="From header of mail")

    # --- blobs ---------------------------------------------------------------------
    blob_store: Literal["local", "s3"] = Field("local", description="where artifact bytes live")
    blob_dir: Path | None = Field(
        None, description="local blob store directory (default data_dir/blobs)"
    )
    s3_bucket: str = Field("forge-artifacts", description="S3 bucket")
    s3_prefix: str = Field("", description="key prefix inside the bucket")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, R2, …)")
    s3_region: str | None = Field(None, description="S3 region")

    # --- sandboxes -----------------------------------------------------------------
    docker_host: str | None = Field(
        None, description="Docker engine URL; unset: DOCKER_HOST or the local socket"
    )

    # --- model providers -------------------------------------------------------------
    anthropic_api_key: SecretStr | None = Field(None, description="enables anthropic/* models")
    anthropic_base_url: str | None = Field(None, description="Anthropic API base URL override")
    gemini_api_key: SecretStr | None = Field(None, description="enables gemini/* models")
    gemini_base_url: str | None = Field(None, description="Gemini API base URL override")
    echo_token_delay_ms: float = Field(20.0, description="pace of the offline echo model")

    @field_validator("admin_emails", mode="before")
    @classmethod
    def _split_emails(cls, value: object) -> object:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen_address.rpartition(":")
        return host or "0.0.0.0", int(port)  # noqa: S104 - binding all interfaces is the point
