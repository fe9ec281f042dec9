"""The model catalog: built-in defaults, endpoint settings and Settings.model_catalog in
layers; prices and cost; what one caller can use (usable_models)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr

from server.config import Settings
from server.llm import ChatProvider, ProviderRegistry
from server.llm.base import FREE, ModelPrices
from server.llm.catalog import BUILT_IN, DEFAULT_CONTEXT_WINDOW_TOKENS
from server.llm.own_keys import NO_OWN_KEYS, KeySource, OwnKey, OwnKeys

API_KEY = "sk-forge-catalog-test-0123456789"


def settings(**overrides: object) -> Settings:
    return Settings(echo_token_delay_ms=0.0, **overrides)  # type: ignore[arg-type]


class _Keyed:
    """A ProviderFactory that is never asked for a provider here (only listing is)."""

    def provider(self, provider_name: str, api_key: SecretStr) -> ChatProvider:
        raise AssertionError("not used by listing")

    async def aclose(self) -> None:
        return None


def own(provider: str, source: KeySource = KeySource.USER) -> OwnKeys:
    key = OwnKey(uuid.uuid4(), provider, source, SecretStr(API_KEY))
    return OwnKeys({provider: key})


async def test_default_models_are_described_by_the_built_in_catalog() -> None:
    registry = ProviderRegistry(
        settings(anthropic_api_key=API_KEY, gemini_api_key=API_KEY, default_model="echo")
    )
    try:
        listed = {model.id: model for model in registry.models()}
        sonnet = listed["anthropic/claude-sonnet-5-5"]
        assert sonnet.display_name == "Claude Sonnet 5.5"
        assert sonnet.context_window_tokens == 1_000_000
        assert sonnet.max_output_tokens == 128_000
        assert sonnet.supports_image_input
        assert sonnet.prices == ModelPrices(2.0, 10.0)
        assert listed["gemini/gemini-2.5-pro"].prices.input_usd_per_million_tokens == 1.25
        # Every default model of Settings has built-in figures.
        defaults = Settings()
        for name in defaults.anthropic_models:
            assert f"anthropic/{name}" in BUILT_IN
        for name in defaults.gemini_models:
            assert f"gemini/{name}" in BUILT_IN
        assert listed["echo"].prices == FREE
    finally:
        await registry.aclose()


async def test_overrides_win_over_built_ins_and_endpoint_fields_over_built_ins() -> None:
    registry = ProviderRegistry(
        settings(
            anthropic_api_key=API_KEY,
            anthropic_models=["claude-sonnet-5-5"],
            openai_endpoints={
                "azure": {
                    "base_url": "http://127.0.0.1:9/v1",
                    "api_key": API_KEY,
                    "models": [
                        {"name": "gpt-4o", "context_window_tokens": 64_000},
                        "openai/gpt-4.1-mini",
                        "unknown-model",
                    ],
                },
            },
            model_catalog={
                "anthropic/claude-sonnet-5-5": {"input_usd_per_million_tokens": 2.5},
                "azure/unknown-model": {"output_usd_per_million_tokens": 7, "display_name": "U"},
            },
        )
    )
    try:
        listed = {model.id: model for model in registry.models()}
        sonnet = listed["anthropic/claude-sonnet-5-5"]
        # Only the overridden field changes.
        assert sonnet.prices == ModelPrices(2.5, 10.0)
        assert sonnet.context_window_tokens == 1_000_000
        # Matched by the name part; the endpoint's own field wins over the built-in one.
        gpt4o = listed["azure/gpt-4o"]
        assert gpt4o.display_name == "GPT-4o"
        assert gpt4o.context_window_tokens == 64_000
        assert gpt4o.max_output_tokens == 16_384
        assert gpt4o.prices == ModelPrices(2.5, 10.0)
        # An OpenRouter-style name is matched as an id.
        assert listed["azure/openai/gpt-4.1-mini"].prices == ModelPrices(0.40, 1.60)
        unknown = listed["azure/unknown-model"]
        assert unknown.display_name == "U"
        assert unknown.prices == ModelPrices(0.0, 7.0)
        assert registry.catalog.prices("azure/never-heard-of") == FREE
    finally:
        await registry.aclose()


async def test_keyless_endpoints_are_free_unless_priced() -> None:
    registry = ProviderRegistry(
        settings(
            openai_endpoints={
                "ollama": {"base_url": "http://127.0.0.1:9/v1", "models": ["gpt-4o", "qwen3"]},
            },
            model_catalog={"ollama/qwen3": {"input_usd_per_million_tokens": 0.01}},
        )
    )
    try:
        listed = {model.id: model for model in registry.models()}
        # Capabilities hold, prices do not: a local server costs nothing.
        assert listed["ollama/gpt-4o"].context_window_tokens == 128_000
        assert listed["ollama/gpt-4o"].prices == FREE
        assert registry.catalog.prices("ollama/qwen3") == ModelPrices(0.01, 0.0)
    finally:
        await registry.aclose()


@pytest.mark.parametrize(
    ("prices", "tokens", "nanos"),
    [
        (ModelPrices(3.0, 15.0), (1_000_000, 1_000_000), 18_000_000_000),
        (ModelPrices(0.15, 0.60), (1234, 567), 185_100 + 340_200),
        (ModelPrices(0.0, 0.0), (10, 10), 0),
    ],
)
def test_cost_is_tokens_times_prices(
    prices: ModelPrices, tokens: tuple[int, int], nanos: int
) -> None:
    assert prices.cost_nanos(*tokens) == nanos


def test_image_cost() -> None:
    assert ModelPrices(usd_per_image=0.039).image_cost_nanos() == 39_000_000


async def test_usable_models_follow_switches_and_own_keys() -> None:
    registry = ProviderRegistry(
        settings(gemini_api_key=API_KEY, gemini_models=["gemini-2.5-pro"]), keyed=_Keyed()
    )
    try:

        def usable(keys: OwnKeys = NO_OWN_KEYS) -> dict[str, KeySource]:
            return {model.info.id: model.key_source for model in registry.usable_models(keys)}

        assert usable() == {"gemini/gemini-2.5-pro": KeySource.SERVER, "echo": KeySource.SERVER}
        registry.set_disabled(["gemini", "echo"])
        assert usable() == {"echo": KeySource.SERVER}
        # An own key serves a switched-off provider, and one the server has no key for,
        # listing the model names Settings give.
        assert usable(own("gemini")) == {
            "echo": KeySource.SERVER,
            "gemini/gemini-2.5-pro": KeySource.USER,
        }
        anthropic = usable(own("anthropic", KeySource.PROJECT))
        assert anthropic["anthropic/claude-sonnet-5-5"] is KeySource.PROJECT
        described = {m.info.id: m.info for m in registry.usable_models(own("anthropic"))}
        assert described["anthropic/claude-sonnet-5-5"].display_name == "Claude Sonnet 5.5"
        registry.set_disabled([])
        assert "gemini/gemini-2.5-pro" in usable()
    finally:
        await registry.aclose()


async def test_discovered_models_are_listed_once_for_usable_endpoints() -> None:
    registry = ProviderRegistry(
        settings(
            openai_endpoints={
                "openai": {
                    "base_url": "http://127.0.0.1:9/v1",
                    "api_key": API_KEY,
                    "models": ["gpt-4o"],
                },
            }
        )
    )
    try:
        found = {"openai": ["gpt-4o", "gpt-4.1", "my-fine-tune"], "gone": ["x"]}
        listed = {model.info.id: model.info for model in registry.usable_models(OwnKeys(), found)}
        assert list(listed) == ["openai/gpt-4o", "echo", "openai/gpt-4.1", "openai/my-fine-tune"]
        assert not listed["openai/gpt-4o"].discovered
        assert listed["openai/gpt-4.1"].discovered
        assert listed["openai/gpt-4.1"].context_window_tokens == 1_047_576
        assert listed["openai/my-fine-tune"].context_window_tokens == DEFAULT_CONTEXT_WINDOW_TOKENS
        registry.set_disabled(["openai"])
        assert [m.info.id for m in registry.usable_models(OwnKeys(), found)] == ["echo"]
    finally:
        await registry.aclose()
