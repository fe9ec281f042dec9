"""Asking an OpenAI-compatible endpoint which models it serves: `GET {base_url}/models`
(OpenAI, DeepSeek, OpenRouter; Ollama and vLLM serve the same route), through the official
SDK (`client.models.list()`), with a client of its own built from the endpoint's settings
and closed after the call. The SDK is imported on the first discovery, not with this module
(the agents service imports this module at start-up; most servers never discover).

A failure raises `DiscoveryFailed` carrying only what is safe to log: the provider's name and
what went wrong (an HTTP status or the error's type), never the key or the response body.
"""

from __future__ import annotations

from pydantic import SecretStr

from server.config_endpoints import OpenAIEndpoint

KEYLESS_PLACEHOLDER = "forge-keyless"
"""The SDK insists on a key (it would otherwise read OPENAI_API_KEY from the environment)."""
MAX_MODELS = 1000
"""More is a misbehaving endpoint; the rest is ignored."""
MAX_NAME_LENGTH = 127


class DiscoveryFailed(Exception):
    def __init__(self, provider: str, what: str) -> None:
        super().__init__(f"{provider}: {what}")
        self.provider = provider
        self.what = what


async def discover_models(
    provider: str,
    endpoint: OpenAIEndpoint,
    timeout_seconds: float,
    api_key: SecretStr | None = None,
) -> list[str]:
    """The model names `endpoint` lists, in its order, without duplicates; `api_key` (a
    caller's own) instead of the endpoint's."""
    import httpx2
    import openai

    key = api_key or endpoint.api_key
    client = openai.AsyncOpenAI(
        api_key=key.get_secret_value() if key is not None else KEYLESS_PLACEHOLDER,
        base_url=endpoint.base_url,
        max_retries=0,
        timeout=httpx2.Timeout(timeout_seconds),
    )
    names: dict[str, None] = {}
    try:
        async for model in client.models.list():
            name = model.id
            if isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH:
                names.setdefault(name, None)
            if len(names) >= MAX_MODELS:
                break
    except openai.APIStatusError as error:
        raise DiscoveryFailed(provider, f"HTTP {error.status_code}") from None
    except (openai.OpenAIError, httpx2.HTTPError, ValueError, TypeError) as error:
        raise DiscoveryFailed(provider, type(error).__name__) from None
    finally:
        await client.close()
    return list(names)
