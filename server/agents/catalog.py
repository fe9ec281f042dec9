"""ListModels: the models usable now, the server's default first."""

from __future__ import annotations

from server.agents.providers import ModelInfo, ProviderRegistry
from server.agents.providers.registry import KNOWN_PROVIDERS
from server.agents.views import Page
from server.core.errors import FieldViolation, InvalidArgument


def list_models(
    registry: ProviderRegistry, provider: str, after: tuple[str, ...] | None, size: int
) -> Page[ModelInfo]:
    if provider and provider not in KNOWN_PROVIDERS:
        raise InvalidArgument.of(
            [FieldViolation("provider", f"must be one of {', '.join(KNOWN_PROVIDERS)}")]
        )
    models = [model for model in registry.models() if not provider or model.provider == provider]
    if after is not None:
        ids = [model.id for model in models]
        # A model gone since the last page (a configuration change) ends the listing.
        start = ids.index(after[0]) + 1 if after and after[0] in ids else len(models)
        models = models[start:]
    shown = models[:size]
    return Page(items=shown, next_key=[shown[-1].id] if len(models) > size else None)
