"""One Settings object, read from the environment (prefix FORGE_) or the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from server.config_builds import BuildSettings
from server.config_deployments import DeploymentSettings
from server.config_docker import DockerSettings
from server.config_load import LoadSettings
from server.config_models import ModelSettings
from server.config_parsing import comma_list
from server.config_telemetry import TelemetrySettings
from server.config_tls import TlsSettings
from server.config_workers import WorkerSettings

MiB = 1024 * 1024


class Settings(
    ModelSettings,
    TelemetrySettings,
    TlsSettings,
    WorkerSettings,
    DockerSettings,
    BuildSettings,
    DeploymentSettings,
    LoadSettings,
):
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
    listen_address: str = Field(
        "127.0.0.1:50051",
        description="host:port the gRPC server binds (loopback by default: callers come "
        "through Envoy; bind 0.0.0.0 only where the port is not reachable from outside)",
    )
    data_dir: Path = Field(
        Path(".forge"), description="local state: embedded database, generated secrets, blobs"
    )
    public_url: str = Field(
        "",
        description="where clients reach the REST gateway, e.g. https://forge.example.com; links "
        "the server hands out (previews) start with it (empty: they are paths on the gateway)",
    )
    log_level: str = Field("INFO", description="root log level")
    log_format: Literal["json", "text"] = Field("json", description="structured JSON or plain text")
    shutdown_drain_seconds: float = Field(
        5.0,
        ge=0,
        description="on SIGTERM, how long health reports NOT_SERVING while new calls are still "
        "accepted (so load balancers stop sending) before they are refused; a second signal "
        "ends it early",
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="then, how long in-flight calls may take before they are cancelled (open "
        "streams end with SERVER_SHUTTING_DOWN a little before)",
    )
    max_message_bytes: int = Field(16 * MiB, description="largest gRPC message sent or received")
    max_pending_requests: int = Field(
        10_000, ge=1, description="calls accepted and waiting for a handler before new ones fail"
    )
    http2_lookahead_bytes: int = Field(
        MiB, ge=0, description="HTTP/2 receive lookahead per stream (upload buffering bound)"
    )
    max_concurrent_rpcs: int | None = Field(
        None, description="calls served at once before new ones are refused (None: unlimited)"
    )
    keepalive_time_ms: int = Field(30_000, description="server keepalive ping interval")
    keepalive_timeout_ms: int = Field(10_000, description="keepalive ping ack timeout")
    keepalive_min_client_ping_ms: int = Field(
        10_000, description="shortest ping interval a client may use without being told off"
    )
    enable_reflection: bool | None = Field(
        None, description="serve the gRPC reflection API (unset: in development only)"
    )
    uvloop: bool = Field(
        True, description="run on uvloop, a faster event loop (python -m server; off: asyncio's)"
    )
    read_lane_connections: int = Field(
        4,
        ge=0,
        description="database connections kept for the reads every call makes (caller state, "
        "GetProject), handed from read to read without a pool checkout; 0: use the pool",
    )

    # --- database ------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL; unset: an embedded PostgreSQL with its data under data_dir",
    )
    database_pool_size: int = Field(10, description="connections kept open per process")
    database_max_overflow: int = Field(20, description="extra connections under load")
    database_probe_seconds: float = Field(
        2.0,
        gt=0,
        description="how often health checks the database (SELECT 1); a call that finds it "
        "unreachable checks at once",
    )
    blob_store_probe_seconds: float = Field(
        2.0,
        gt=0,
        description="how often health checks the blob store (S3: HEAD of the bucket); a call "
        "that finds it unreachable checks at once",
    )
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
    refresh_reuse_grace_seconds: float = Field(
        5.0,
        ge=0,
        description="a rotated refresh token presented again this soon (two tabs, a retry) "
        "gets the pair already issued for it; later, its reuse ends the session",
    )
    bcrypt_rounds: int = Field(12, ge=4, le=16, description="bcrypt cost factor")
    admin_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="emails that become admin on registration"
    )
    smtp_url: SecretStr | None = Field(
        None, description="smtp://user:pass@host:port for outgoing mail; unset: mail is logged"
    )
    mail_from: str = Field("Forge <no-reply@forge.local>", description="From header of mail")
    login_window_seconds: float = Field(
        900.0, gt=0, description="failed sign-ins are counted over this window"
    )
    login_max_failures: int = Field(
        10, ge=1, description="failed sign-ins per account from one client address per window"
    )
    login_max_failures_per_account: int = Field(
        50, ge=1, description="failed sign-ins per account from all addresses per window"
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="peers (IP addresses) whose x-forwarded-for names the client, i.e. the "
        "gateway; comma-separated; empty: the direct peer is the client (make run trusts its "
        "local Envoy)",
    )

    # --- blobs ---------------------------------------------------------------------
    blob_store: Literal["local", "s3"] = Field("local", description="where artifact bytes live")
    blob_dir: Path | None = Field(
        None, description="local blob store directory (default data_dir/blobs)"
    )
    s3_bucket: str = Field("forge-artifacts", description="S3 bucket")
    s3_prefix: str = Field("", description="key prefix inside the bucket")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, R2, …)")
    s3_region: str | None = Field(None, description="S3 region")
    s3_access_key_id: str | None = Field(
        None, description="S3 access key id; unset: the usual AWS credential chain"
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret access key (with s3_access_key_id)"
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="bucket in the host name or the path (MinIO usually wants path)"
    )
    s3_multipart_part_bytes: int = Field(
        8 * MiB,
        ge=5 * MiB,
        description="S3 upload part size (>= 5 MiB); blobs up to this size go in one PUT. "
        "Memory per upload in flight is one part",
    )
    max_upload_bytes: int = Field(50 * MiB, ge=0, description="largest artifact upload")
    max_tree_files: int = Field(
        2000, ge=1, description="most files in one version of a tree (multi-file) artifact"
    )
    upload_allowed_content_types: list[str] = Field(
        default_factory=lambda: [
            "text/*",
            "application/json",
            "application/javascript",
            "application/typescript",
            "application/xml",
            "application/yaml",
            "application/sql",
            "application/pdf",
            "application/zip",
            "application/gzip",
            "application/octet-stream",
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "image/svg+xml",
        ],
        description="content types an upload may declare: exact, or 'type/*' for a family "
        "(parameters such as '; charset=utf-8' are ignored); JSON list in the environment",
    )
    presign_expiry_seconds: int = Field(
        900, ge=1, le=7 * 24 * 3600, description="default lifetime of a download URL"
    )
    image_model: str | None = Field(
        None,
        description="model of GenerateImage requests naming none: echo or gemini/<image model>; "
        "unset: gemini/gemini-2.5-flash-image when gemini_api_key is set, else echo",
    )

    # --- sandboxes -----------------------------------------------------------------
    docker_host: str | None = Field(
        None, description="Docker engine URL; unset: DOCKER_HOST or the local socket"
    )
    # (sandbox settings: begin; owned by server/sandbox)
    sandbox_namespace: str = Field(
        "default",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
        description="label value (forge.namespace) of this server's containers; reconciliation "
        "only touches its own namespace, so servers sharing an engine need distinct values",
    )
    sandbox_python_image: str = Field("forge-sandbox-python:1", description="python runtime")
    sandbox_node_image: str = Field("forge-sandbox-node:2", description="node runtime")
    sandbox_pool_size: int = Field(2, ge=0, le=64, description="warm containers per runtime")
    sandbox_pool_sizes: dict[str, int] = Field(
        default_factory=dict,
        description='per-runtime warm pool sizes overriding sandbox_pool_size, e.g. {"node": 0}',
    )
    sandbox_memory_bytes: int = Field(256 * MiB, ge=16 * MiB, description="default memory")
    sandbox_max_memory_bytes: int = Field(2048 * MiB, ge=16 * MiB, description="maximum memory")
    sandbox_cpu_millis: int = Field(500, ge=10, description="default CPU (1000 = one CPU)")
    sandbox_max_cpu_millis: int = Field(2000, ge=10, description="maximum CPU")
    sandbox_pids: int = Field(50, ge=8, description="default process and thread limit")
    sandbox_max_pids: int = Field(512, ge=8, description="maximum process and thread limit")
    sandbox_disk_bytes: int = Field(128 * MiB, ge=MiB, description="default /workspace size")
    sandbox_max_disk_bytes: int = Field(1024 * MiB, ge=MiB, description="maximum /workspace size")
    sandbox_tmp_bytes: int = Field(64 * MiB, ge=MiB, description="default /tmp size")
    sandbox_max_tmp_bytes: int = Field(512 * MiB, ge=MiB, description="maximum /tmp size")
    sandbox_exec_timeout_seconds: float = Field(30.0, gt=0, description="default exec timeout")
    sandbox_max_exec_timeout_seconds: float = Field(3600.0, gt=0, description="max exec timeout")
    sandbox_idle_timeout_seconds: float = Field(
        20.0, gt=0, description="default limit on an execution producing no output"
    )
    sandbox_max_idle_timeout_seconds: float = Field(3600.0, gt=0, description="max idle timeout")
    sandbox_output_limit_bytes: int = Field(
        MiB, ge=1024, description="default output cap per stream per execution"
    )
    sandbox_max_output_limit_bytes: int = Field(64 * MiB, ge=1024, description="max output cap")
    sandbox_idle_ttl_seconds: float = Field(
        3600.0, gt=0, description="idle sandboxes are destroyed after this long"
    )
    sandbox_max_lifetime_seconds: float = Field(
        24 * 3600.0, gt=0, description="every sandbox is destroyed after this long"
    )
    sandbox_reaper_interval_seconds: float = Field(
        30.0, gt=0, description="how often the reaper looks for expired sandboxes"
    )
    sandbox_max_per_project: int = Field(20, ge=1, description="live sandboxes per project")
    sandbox_max_file_bytes: int = Field(
        8 * MiB, ge=1024, description="largest file WriteFile accepts and ReadFile returns"
    )
    sandbox_max_stdin_bytes: int = Field(MiB, ge=0, description="largest exec stdin")
    sandbox_max_code_bytes: int = Field(MiB, ge=1024, description="largest RunCode source")
    sandbox_max_concurrent_execs: int = Field(
        64, ge=1, description="executions streaming at once per server (one reader thread each)"
    )
    sandbox_docker_threads: int = Field(
        16, ge=1, description="threads for blocking Docker API calls"
    )
    sandbox_backend_retry_seconds: float = Field(
        30.0, gt=0, description="how often an unreachable Docker engine is tried again"
    )
    # (sandbox settings: end)

    daily_token_quota: int | None = Field(
        None,
        ge=1,
        description="tokens (input + output) a user may spend per UTC day; once spent, new "
        "chats are refused until midnight UTC (unset: no quota)",
    )
    chat_save_interval_seconds: float = Field(
        0.5,
        gt=0,
        description="how often the text of answers being streamed is saved (a crash loses at "
        "most about twice this)",
    )
    chat_orphan_after_seconds: float = Field(
        10.0,
        gt=0,
        description="an answer in progress not saved for this long belongs to a server that is "
        "gone: the sweeper settles it as interrupted (keep it well above the save interval)",
    )
    chat_sweep_interval_seconds: float = Field(
        5.0, gt=0, description="how often a server looks for interrupted answers"
    )
    chat_open_concurrency: int = Field(
        16,
        ge=1,
        description="chats a server process opens at once (authentication, checks, reads and "
        "writes, up to the first event)",
    )
    chat_open_backlog: int = Field(
        64,
        ge=0,
        description="chats that may wait their turn to be opened beyond chat_open_concurrency; "
        "more are refused at once with RESOURCE_EXHAUSTED SERVER_BUSY and a RetryInfo of about "
        "the time the queue needs",
    )
    chat_open_max_wait_ms: float = Field(
        50.0,
        gt=0,
        description="longest a chat should wait its turn to be opened, judged by how long "
        "opens take now: a loaded server keeps a shorter queue (at most chat_open_backlog) "
        "and refuses the rest at once",
    )

    # --- retries (AIP-155 request ids) ---
    idempotency_ttl_seconds: float = Field(
        86_400.0,
        gt=0,
        description="how long a request id is remembered: a retry within this time gets the "
        "first call's result",
    )
    idempotency_lease_seconds: float = Field(
        120.0,
        gt=0,
        description="a first call still unfinished after this long is taken to be lost with "
        "its server: a retry runs the request again",
    )
    idempotency_wait_seconds: float = Field(
        20.0,
        gt=0,
        description="how long a retry waits for its first call to finish before answering "
        "ABORTED REQUEST_IN_PROGRESS (at most the retry's own deadline)",
    )

    # --- agent runs ---
    run_default_max_steps: int = Field(
        30, ge=1, le=500, description="model turns a run may take when StartRun names none"
    )
    run_max_steps_limit: int = Field(
        200, ge=1, le=10_000, description="the largest max_steps StartRun accepts"
    )
    run_default_token_budget: int = Field(
        500_000, ge=1, description="input + output tokens a run may spend when StartRun names none"
    )
    run_default_time_limit_seconds: float = Field(
        3600.0, gt=0, description="wall-clock limit of a run when StartRun names none"
    )
    run_max_time_limit_seconds: float = Field(
        86_400.0, gt=0, description="the longest time_limit StartRun accepts"
    )
    runs_per_user: int = Field(
        5, ge=1, description="runs one user may have queued, running or waiting at once"
    )
    run_lease_seconds: float = Field(
        15.0,
        gt=0,
        description="how long a server owns a run without renewing it; after that (a crash) "
        "another server takes the run over",
    )
    run_claim_interval_seconds: float = Field(
        2.0, gt=0, description="how often a server looks for runs whose owner is gone"
    )
    run_bash_timeout_seconds: float = Field(
        120.0, gt=0, description="wall-clock limit of one bash tool call"
    )
    run_tool_output_chars: int = Field(
        16_000, ge=256, description="characters of a tool's output shown to the model"
    )
    run_delta_flush_ms: float = Field(
        50.0, ge=0, description="how long model text is buffered before it is stored"
    )

    # --- fair shares (per-user defaults; an admin overrides them per user with
    # UpdateUserLimits; runs_per_user above is the default of max_active_runs) ---
    user_max_concurrent_execs: int = Field(
        8, ge=1, description="Exec and RunCode calls one user may have running at once per server"
    )
    project_max_concurrent_execs: int = Field(
        16, ge=1, description="Exec and RunCode calls running at once in one project per server"
    )
    user_max_sandboxes: int = Field(
        20,
        ge=1,
        description="live sandboxes one user may have across all projects (RunCode's "
        "throwaway ones not counted)",
    )
    user_max_concurrent_streams: int = Field(
        32,
        ge=1,
        description="server streams (Chat, Exec, RunCode, WatchRun, DownloadArtifact) one user "
        "may have open at once per server",
    )
    user_max_artifact_bytes: int = Field(
        1024 * MiB,
        ge=1,
        description="bytes of artifact versions one user may have stored (every version they "
        "wrote counts with its size until its artifact is deleted)",
    )
    registrations_per_address_per_hour: int = Field(
        20, ge=1, description="accounts that may be registered from one client address per hour"
    )
    user_limits_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="how long a server keeps a user's limits before reading them again (an "
        "admin's override reaches other servers within this)",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("admin_emails", mode="before")
    @classmethod
    def _split_emails(cls, value: object) -> object:
        listed = comma_list(value)
        return [str(email).lower() for email in listed] if isinstance(listed, list) else listed

    @property
    def reflection_enabled(self) -> bool:
        if self.enable_reflection is not None:
            return self.enable_reflection
        return self.environment != "production"

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen_address.rpartition(":")
        return host or "0.0.0.0", int(port)  # noqa: S104 - binding all interfaces is the point
