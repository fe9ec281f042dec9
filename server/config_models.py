"""Settings of model providers, the model catalog, users' own provider keys and history
compaction: the part of `Settings` about models (Settings inherits it)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

from server.config_catalog import MODEL_CATALOG_HELP, ModelCatalog
from server.config_endpoints import OPENAI_ENDPOINTS_HELP, OpenAIEndpoints


class ModelSettings(BaseSettings):
    # --- model providers -------------------------------------------------------------
    anthropic_api_key: SecretStr | None = Field(None, description="enables anthropic/* models")
    anthropic_base_url: str | None = Field(None, description="Anthropic API base URL override")
    gemini_api_key: SecretStr | None = Field(None, description="enables gemini/* models")
    gemini_base_url: str | None = Field(None, description="Gemini API base URL override")
    openai_endpoints: OpenAIEndpoints = Field(
        default_factory=dict, description=OPENAI_ENDPOINTS_HELP
    )
    echo_token_delay_ms: float = Field(20.0, description="pace of the offline echo model")
    anthropic_models: list[str] = Field(
        default_factory=lambda: ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"],
        description="anthropic models listed by ListModels (any name is accepted in a request)",
    )
    gemini_models: list[str] = Field(
        default_factory=lambda: ["gemini-3.8-flash", "gemini-2.5-pro"],
        description="gemini models listed by ListModels (any name is accepted in a request)",
    )
    default_model: str | None = Field(
        None, description="model of new chats; unset: the first configured provider's, else echo"
    )
    provider_timeout_seconds: float = Field(
        60.0, gt=0, description="provider connect timeout and longest silence inside a stream"
    )
    provider_retry_attempts: int = Field(
        4, ge=1, description="attempts (first included) before the first token of an answer"
    )
    provider_retry_base_delay_seconds: float = Field(
        0.5, ge=0, description="first retry backoff; doubles per attempt, with jitter"
    )
    provider_retry_max_delay_seconds: float = Field(
        8.0, ge=0, description="longest retry backoff; a longer provider retry-after fails now"
    )
    provider_max_output_tokens: int = Field(
        4096, ge=1, description="answer length limit when the request names none"
    )
    history_token_budget: int = Field(
        16_000, ge=1, description="approximate tokens of history sent to a provider"
    )

    # --- model catalog and providers switched by admins ------------------------------
    model_catalog: ModelCatalog = Field(default_factory=dict, description=MODEL_CATALOG_HELP)
    provider_switch_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="how long a server trusts its copy of which providers admins switched "
        "on or off (a switch reaches other servers within this)",
    )
    model_discovery_min_interval_seconds: float = Field(
        60.0,
        ge=0,
        description="ListModels `refresh` asks a provider for its models at most this often",
    )

    # --- users' and projects' own provider keys ---------------------------------------
    provider_key_encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="keys that encrypt stored provider keys (AES-256-GCM): each 32 bytes, "
        "base64; the first encrypts, every one decrypts (rotation: put the new key first, "
        "keep the old until stored keys are re-encrypted); unset: derived from the server "
        "secret (development only)",
    )

    # --- compaction of long histories ------------------------------------------------
    summary_max_output_tokens: int = Field(
        1024, ge=64, description="length limit of the summary that replaces older history"
    )

    @field_validator("provider_key_encryption_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
