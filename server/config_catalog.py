"""Settings of the model catalog (`Settings.model_catalog`): what the server says about a
model, over the built-in defaults.

In the environment, FORGE_MODEL_CATALOG is JSON: an object of model id -> fields to set,
e.g.

    {"anthropic/claude-sonnet-5-5": {"input_usd_per_million_tokens": 3,
                                     "output_usd_per_million_tokens": 15},
     "ollama/llama3.2": {"context_window_tokens": 131072, "supports_image_input": false}}

A field left out keeps the built-in default (or, for a model the server knows nothing of,
the provider's default).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MODEL_CATALOG_HELP = (
    "model catalog overrides as JSON: an object of model id -> {display_name, "
    "context_window_tokens, max_output_tokens, supports_tools, supports_image_input, "
    "input_usd_per_million_tokens, output_usd_per_million_tokens, usd_per_image}; fields "
    "left out keep the built-in defaults"
)


class ModelEntry(BaseModel):
    """What is configured about one model; None: the built-in default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    display_name: str | None = None
    context_window_tokens: int | None = Field(None, ge=1)
    max_output_tokens: int | None = Field(None, ge=1)
    supports_tools: bool | None = None
    supports_image_input: bool | None = None
    input_usd_per_million_tokens: float | None = Field(None, ge=0)
    output_usd_per_million_tokens: float | None = Field(None, ge=0)
    usd_per_image: float | None = Field(None, ge=0)
    """Image models (GenerateImage): the price of one generated image."""


ModelCatalog = dict[str, ModelEntry]
