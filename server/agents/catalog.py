"""ListModels: the models usable now, the server's default first."""

from __future__ import annotations

from server.core.errors import FieldViolation, InvalidArgument
from server.core.pagination import Listed, Page
from server.llm import ModelInfo, ProviderRegistry


def list_models(registry: ProviderRegistry, provider: str, page: Page) -> Listed[ModelInfo]:
    known = registry.provider_names
    if provider and provider not in known:
        raise InvalidArgument.of([FieldViolation("provider", f"must be one of {', '.join(known)}")])
    models = [model for model in registry.models() if not provider or model.provider == provider]
    after, size = page.after, page.size
    if after is not None:
        ids = [model.id for model in models]
        # A model gone since the last page (a configuration change) ends the listing.
        start = ids.index(after[0]) + 1 if after and after[0] in ids else len(models)
        models = models[start:]
    shown = models[:size]
    return Listed(items=shown, next_key=[shown[-1].id] if len(models) > size else None)
