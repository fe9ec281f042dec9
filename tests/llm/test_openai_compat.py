"""The OpenAI-compatible provider against a fake Chat Completions server speaking the real SSE
wire format, so the real `openai` SDK runs end to end over loopback HTTP."""

from __future__ import annotations

import json
import traceback
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from datetime import timedelta

import pytest
from pydantic import ValidationError

from server.core.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, Unavailable
from server.llm import (
    ChatMessage,
    ChatRequest,
    Finish,
    ProviderEvent,
    ProviderRegistry,
    ProviderStreamError,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    ToolSpec,
    Usage,
)
from server.llm.openai_compat import KEYLESS_PLACEHOLDER, OpenAICompatProvider
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import FakeToolCall, Script, words
from tests.llm.test_providers import ATTEMPTS, collect, failure_of, make_settings, texts, within

API_KEY = "sk-openai-test-0123456789abcdef"
MODEL = "gpt-test"


def endpoint(base_url: str, *, api_key: str | None = API_KEY, **extra: object) -> dict[str, object]:
    values: dict[str, object] = {"base_url": f"{base_url}/v1", "models": [MODEL], **extra}
    if api_key is not None:
        values["api_key"] = api_key
    return values


@asynccontextmanager
async def serving(
    script: Script, *, api_key: str | None = API_KEY, **extra: object
) -> AsyncIterator[tuple[OpenAIFake, OpenAICompatProvider]]:
    fake = OpenAIFake(script)
    async with fake as base_url:
        settings = make_settings(
            openai_endpoints={"openai": endpoint(base_url, api_key=api_key, **extra)}
        )
        provider = OpenAICompatProvider("openai", settings.openai_endpoints["openai"], settings)
        try:
            yield fake, provider
        finally:
            await provider.aclose()


def ask(prompt: str = "hello there", **fields: object) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=[ChatMessage.user(prompt)], **fields)  # type: ignore[arg-type]


# --- streaming -------------------------------------------------------------------------


async def test_deltas_are_relayed_before_the_provider_finishes() -> None:
    tokens = words(25)
    received: list[ProviderEvent] = []
    async with (
        serving(Script(tokens=tokens, hold_after=24)) as (fake, provider),
        aclosing(provider.stream(ask())) as events,
    ):
        async for event in events:
            received.append(event)
            if len(received) == 24:
                break
        assert fake.holding.is_set()
        assert not fake.last_token_sent.is_set()
        fake.release.set()
        received.extend([event async for event in events])
    assert texts(received) == tokens
    assert received[-1] == Finish("stop", Usage(input_tokens=17, output_tokens=25))
    assert fake.streams_completed == 1


async def test_usage_and_a_length_finish_are_mapped() -> None:
    script = Script(tokens=words(5), input_tokens=123, output_tokens=45, stop_reason="length")
    async with serving(script) as (_, provider):
        events = await collect(provider.stream(ask()))
    assert events[-1] == Finish("max_tokens", Usage(123, 45))


async def test_streamed_tool_calls_become_requests_with_their_full_arguments() -> None:
    script = Script(
        tokens=words(2),
        tool_calls=[
            FakeToolCall("bash", {"command": "ls -la /workspace && echo done"}, id="call_a"),
            FakeToolCall("editor", {"path": "main.py", "text": "print('hi')\n" * 3}),
        ],
    )
    tools = [ToolSpec("bash", "runs a command"), ToolSpec("editor", "edits a file")]
    async with serving(script) as (_, provider):
        events = await collect(provider.stream(ask(tools=tools)))
    calls = [event for event in events if isinstance(event, ToolCallRequest)]
    assert [(call.id, call.name) for call in calls] == [
        ("call_a", "bash"),
        ("call_fake_1", "editor"),
    ]
    assert json.loads(calls[0].arguments_json) == {"command": "ls -la /workspace && echo done"}
    assert json.loads(calls[1].arguments_json) == {"path": "main.py", "text": "print('hi')\n" * 3}
    assert events[-1] == Finish("tool_use", Usage(17, 2 + 10))


async def test_request_shape_key_temperature_history_and_tools() -> None:
    history = [
        ChatMessage.user("list the files"),
        ChatMessage.assistant("Looking.", [ToolCall("call_1", "bash", '{"command": "ls"}')]),
        ChatMessage.tool([ToolResult("call_1", "bash", "a.py", is_error=True)]),
        ChatMessage.user("and now?"),
    ]
    request = ChatRequest(
        model=MODEL,
        messages=history,
        system="be brief",
        tools=[ToolSpec("bash", "runs a command")],
        max_tokens=99,
        temperature=0.25,
    )
    async with serving(Script(tokens=words(3))) as (fake, provider):
        await collect(provider.stream(request))
    sent = fake.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    body = sent.body
    assert body["model"] == MODEL
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 99
    assert "max_completion_tokens" not in body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "bash",
                "description": "runs a command",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "list the files"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "ls"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Tool error: a.py"},
        {"role": "user", "content": "and now?"},
    ]


async def test_defaults_leave_temperature_out_and_can_use_max_completion_tokens() -> None:
    script = Script(tokens=words(3))
    async with serving(script, max_tokens_param="max_completion_tokens") as (fake, provider):
        await collect(provider.stream(ask()))
    body = fake.requests[0].body
    assert "temperature" not in body
    assert "tools" not in body
    assert "max_tokens" not in body
    assert body["max_completion_tokens"] == make_settings().provider_max_output_tokens


async def test_closing_after_five_deltas_closes_the_provider_connection() -> None:
    async with serving(Script(tokens=words(30), hold_after=10)) as (fake, provider):
        events = provider.stream(ask())
        deltas = 0
        async for _ in events:
            deltas += 1
            if deltas == 5:
                break
        await events.aclose()
        await within(fake.disconnected, "the fake seeing its connection closed")
    assert fake.streams_completed == 0


# --- errors ----------------------------------------------------------------------------


async def test_rate_limited_twice_then_success() -> None:
    async with serving(Script(tokens=words(20), statuses=[429, 429])) as (fake, provider):
        events = await collect(provider.stream(ask()))
    assert len(texts(events)) == 20
    assert len(fake.requests) == 3


async def test_rate_limited_forever_is_resource_exhausted_with_retry_after() -> None:
    async with serving(Script(status_forever=429, retry_after="0.02")) as (fake, provider):
        with pytest.raises(ResourceExhausted) as caught:
            await collect(provider.stream(ask()))
    assert caught.value.reason == "PROVIDER_RATE_LIMITED"
    assert caught.value.retry_after == timedelta(seconds=0.02)
    assert caught.value.metadata["provider"] == "openai"
    assert len(fake.requests) == ATTEMPTS


@pytest.mark.parametrize("statuses", [[500], [503, 502]])
async def test_server_errors_are_retried(statuses: list[int]) -> None:
    async with serving(Script(tokens=words(4), statuses=statuses)) as (fake, provider):
        events = await collect(provider.stream(ask()))
    assert len(texts(events)) == 4
    assert len(fake.requests) == len(statuses) + 1


async def test_server_errors_forever_are_unavailable() -> None:
    async with serving(Script(status_forever=500)) as (fake, provider):
        with pytest.raises(Unavailable) as caught:
            await collect(provider.stream(ask()))
    assert caught.value.reason == "PROVIDER_UNAVAILABLE"
    assert len(fake.requests) == ATTEMPTS


async def test_an_unreachable_endpoint_is_unavailable() -> None:
    settings = make_settings(openai_endpoints={"openai": endpoint("http://127.0.0.1:9")})
    provider = OpenAICompatProvider("openai", settings.openai_endpoints["openai"], settings)
    try:
        with pytest.raises(Unavailable):
            await collect(provider.stream(ask()))
    finally:
        await provider.aclose()


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_failed_precondition_and_never_echoed(status: int) -> None:
    wrong_key = "sk-wrong-DO-NOT-LEAK-4242424242"
    script = (
        Script(expected_api_key="sk-the-right-one") if status == 401 else Script(status_forever=403)
    )
    async with serving(script, api_key=wrong_key) as (fake, provider):
        with pytest.raises(FailedPrecondition) as caught:
            await collect(provider.stream(ask()))
    error = caught.value
    assert error.reason == "PROVIDER_AUTH_FAILED"
    assert len(fake.requests) == 1  # not retried
    shown = [
        str(error),
        repr(error),
        error.message,
        *error.metadata.values(),
        "".join(traceback.format_exception(error)),
    ]
    assert not any(wrong_key in text for text in shown)
    assert error.__cause__ is None


async def test_an_error_in_the_stream_after_ten_tokens() -> None:
    async with serving(Script(tokens=words(30), error_after=10)) as (fake, provider):
        deltas, error = await failure_of(provider.stream(ask()))
    assert deltas == 10
    assert isinstance(error, ProviderStreamError)
    assert isinstance(error.error, Unavailable)
    assert len(fake.requests) == 1


async def test_a_rate_limit_in_the_stream_keeps_its_meaning() -> None:
    script = Script(tokens=words(30), error_after=3, error_status=429)
    async with serving(script) as (_, provider):
        deltas, error = await failure_of(provider.stream(ask()))
    assert deltas == 3
    assert isinstance(error, ProviderStreamError)
    assert isinstance(error.error, ResourceExhausted)


# --- endpoints in the registry ---------------------------------------------------------


async def test_two_endpoints_one_keyless_are_listed_resolved_and_streamed() -> None:
    openai_script, ollama_script = Script(tokens=words(3)), Script(tokens=words(4, "ol"))
    openai_fake, ollama_fake = OpenAIFake(openai_script), OpenAIFake(ollama_script)
    async with openai_fake as openai_url, ollama_fake as ollama_url:
        settings = make_settings(
            openai_endpoints={
                "openai": endpoint(openai_url, models=["gpt-test", "gpt-other"]),
                "ollama": endpoint(
                    ollama_url,
                    api_key=None,
                    models=[{"name": "llama3.2", "context_window_tokens": 8192}],
                ),
            }
        )
        registry = ProviderRegistry(settings)
        try:
            listed = {model.id: model for model in registry.models()}
            assert list(listed) == [
                "openai/gpt-test",
                "openai/gpt-other",
                "ollama/llama3.2",
                "echo",
            ]
            assert registry.default_model == "openai/gpt-test"
            assert listed["ollama/llama3.2"].context_window_tokens == 8192
            assert listed["ollama/llama3.2"].provider == "ollama"
            assert API_KEY not in repr(listed)
            assert registry.provider_names == ("anthropic", "gemini", "echo", "ollama", "openai")
            for model_id, script in (
                ("openai/gpt-x", openai_script),
                ("ollama/llama3.2", ollama_script),
            ):
                resolved = registry.resolve(model_id)
                request = ChatRequest(resolved.name, [ChatMessage.user("hi")], temperature=0.5)
                events = await collect(resolved.provider.stream(request))
                assert texts(events) == script.tokens
        finally:
            await registry.aclose()
    assert openai_fake.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert openai_fake.requests[0].body["model"] == "gpt-x"
    assert ollama_fake.requests[0].headers["authorization"] == f"Bearer {KEYLESS_PLACEHOLDER}"
    assert ollama_fake.requests[0].body["model"] == "llama3.2"
    assert ollama_fake.requests[0].body["temperature"] == 0.5


async def test_endpoint_model_names_may_contain_a_slash_but_unknown_endpoints_fail() -> None:
    settings = make_settings(openai_endpoints={"openrouter": endpoint("http://127.0.0.1:9")})
    registry = ProviderRegistry(settings)
    try:
        resolved = registry.resolve("openrouter/meta-llama/llama-3.1-70b-instruct")
        assert resolved.name == "meta-llama/llama-3.1-70b-instruct"
        with pytest.raises(InvalidArgument) as caught:
            registry.resolve("deepseek/deepseek-chat")
        assert "openrouter/<model>" in caught.value.violations[0].description
        with pytest.raises(InvalidArgument):
            registry.resolve("openrouter/ bad")
    finally:
        await registry.aclose()


def test_endpoints_from_the_environment_as_a_list_and_reserved_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "FORGE_OPENAI_ENDPOINTS",
        '[{"name": "deepseek", "base_url": "https://api.deepseek.com/v1", "api_key": "k",'
        ' "models": ["deepseek-chat"]}]',
    )
    endpoints = make_settings().openai_endpoints
    assert list(endpoints) == ["deepseek"]
    assert endpoints["deepseek"].models[0].name == "deepseek-chat"
    assert endpoints["deepseek"].api_key is not None
    with pytest.raises(ValidationError, match="built-in provider"):
        make_settings(openai_endpoints={"gemini": {"base_url": "http://x/v1"}})
    with pytest.raises(ValidationError, match="lower-case"):
        make_settings(openai_endpoints={"Open AI": {"base_url": "http://x/v1"}})
