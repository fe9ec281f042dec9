"""The provider layer against fake provider servers that speak the real wire formats, so the
real `anthropic` and `google-genai` SDKs run end to end over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from datetime import timedelta
from typing import Literal

import pytest

from server.config import Settings
from server.core.errors import (
    FailedPrecondition,
    ForgeError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from server.llm import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Finish,
    ProviderEvent,
    ProviderRegistry,
    ProviderStreamError,
    TextDelta,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    ToolSpec,
    Usage,
    trim_history,
)
from server.llm.anthropic import AnthropicProvider
from server.llm.echo import EchoProvider
from server.llm.echo_answer import compose
from server.llm.gemini import GeminiProvider
from server.llm.history import estimate_message_tokens
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.script import FakeToolCall, Script, words
from tests.fakes.server import FakeProviderServer

Kind = Literal["anthropic", "gemini"]
KINDS: list[Kind] = ["anthropic", "gemini"]
API_KEY = "sk-forge-test-0123456789abcdef"
DEADLINE = 5.0
ATTEMPTS = 3
MODEL = {"anthropic": "claude-test", "gemini": "gemini-test"}


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "echo_token_delay_ms": 0.0,
        "provider_retry_attempts": ATTEMPTS,
        "provider_retry_base_delay_seconds": 0.01,
        "provider_retry_max_delay_seconds": 0.05,
        "provider_timeout_seconds": DEADLINE,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def serving(
    kind: Kind, script: Script, *, api_key: str = API_KEY, **overrides: object
) -> AsyncIterator[tuple[FakeProviderServer, ChatProvider]]:
    fake: FakeProviderServer = AnthropicFake(script) if kind == "anthropic" else GeminiFake(script)
    async with fake as base_url:
        settings = make_settings(
            **{f"{kind}_api_key": api_key, f"{kind}_base_url": base_url}, **overrides
        )
        provider: ChatProvider = (
            AnthropicProvider(settings) if kind == "anthropic" else GeminiProvider(settings)
        )
        try:
            yield fake, provider
        finally:
            await provider.aclose()


def ask(
    kind: Kind | Literal["echo"],
    prompt: str = "hello there",
    *,
    tools: Sequence[ToolSpec] = (),
    max_tokens: int | None = None,
) -> ChatRequest:
    return ChatRequest(
        model=MODEL[kind] if kind != "echo" else "echo",
        messages=[ChatMessage.user(prompt)],
        tools=tools,
        max_tokens=max_tokens,
    )


async def collect(events: AsyncGenerator[ProviderEvent, None]) -> list[ProviderEvent]:
    async with aclosing(events):
        return [event async for event in events]


def texts(events: list[ProviderEvent]) -> list[str]:
    return [event.text for event in events if isinstance(event, TextDelta)]


async def within(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), DEADLINE)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {DEADLINE}s") from None


async def failure_of(events: AsyncGenerator[ProviderEvent, None]) -> tuple[int, BaseException]:
    """How many deltas arrived before the stream raised, and what it raised."""
    deltas = 0
    async with aclosing(events):
        try:
            async for event in events:
                deltas += isinstance(event, TextDelta)
        except (ForgeError, ProviderStreamError) as error:
            return deltas, error
    raise AssertionError(f"the stream ended without an error after {deltas} deltas")


# --- streaming -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_deltas_are_relayed_before_the_provider_finishes(kind: Kind) -> None:
    tokens = words(25)
    received: list[ProviderEvent] = []
    async with (
        serving(kind, Script(tokens=tokens, hold_after=24)) as (fake, provider),
        aclosing(provider.stream(ask(kind))) as events,
    ):
        async for event in events:
            received.append(event)
            if len(received) == 24:
                break
        # All but the last token arrived while the fake still holds that one back.
        assert fake.holding.is_set()
        assert not fake.last_token_sent.is_set()
        fake.release.set()
        received.extend([event async for event in events])
    assert texts(received) == tokens
    assert received[-1] == Finish("stop", Usage(input_tokens=17, output_tokens=25))
    assert fake.streams_completed == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_usage_is_what_the_provider_reported(kind: Kind) -> None:
    script = Script(tokens=words(21), input_tokens=123, output_tokens=45)
    async with serving(kind, script) as (_, provider):
        events = await collect(provider.stream(ask(kind)))
    assert len(texts(events)) == 21
    assert events[-1] == Finish("stop", Usage(input_tokens=123, output_tokens=45))


@pytest.mark.parametrize(
    ("kind", "stop_reason"), [("anthropic", "max_tokens"), ("gemini", "MAX_TOKENS")]
)
async def test_max_tokens_finish_is_mapped(kind: Kind, stop_reason: str) -> None:
    async with serving(kind, Script(tokens=words(3), stop_reason=stop_reason)) as (_, provider):
        events = await collect(provider.stream(ask(kind)))
    last = events[-1]
    assert isinstance(last, Finish)
    assert last.reason == "max_tokens"


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_call_requests_are_mapped(kind: Kind) -> None:
    arguments = {"language": "python", "code": "print('hi')\n", "timeout": 5}
    script = Script(tokens=words(3), tool_calls=[FakeToolCall("run_code", arguments)])
    tool = ToolSpec(
        "run_code",
        "Runs code in a sandbox",
        {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    )
    async with serving(kind, script) as (fake, provider):
        events = await collect(provider.stream(ask(kind, "run it", tools=[tool])))
    calls = [event for event in events if isinstance(event, ToolCallRequest)]
    assert len(calls) == 1
    assert calls[0].name == "run_code"
    assert json.loads(calls[0].arguments_json) == arguments
    if kind == "anthropic":
        assert calls[0].id == "toolu_fake_1"
    else:  # Gemini gave no id: one is made up, unique, and never sent back to Gemini
        assert calls[0].id.startswith("gemini-call-")
    last = events[-1]
    assert isinstance(last, Finish)
    assert last.reason == "tool_use"
    # The tool was offered in the provider's own format.
    body = fake.requests[0].body
    if kind == "anthropic":
        assert body["tools"] == [
            {"name": "run_code", "description": tool.description, "input_schema": tool.parameters}
        ]
    else:
        declaration = body["tools"][0]["functionDeclarations"][0]  # type: ignore[index]
        assert declaration["name"] == "run_code"
        schema = declaration.get("parametersJsonSchema", declaration.get("parameters_json_schema"))
        assert schema == tool.parameters


@pytest.mark.parametrize("kind", KINDS)
async def test_history_with_tool_turns_is_sent_in_the_provider_format(kind: Kind) -> None:
    call = ToolCall("call_1", "run_code", '{"code": "print(2)"}')
    history = [
        ChatMessage.user("first question"),
        ChatMessage.assistant("first answer"),
        ChatMessage.user("run something"),
        ChatMessage.assistant("running", [call]),
        ChatMessage.tool([ToolResult("call_1", "run_code", "2\n")]),
        ChatMessage.user("and now?"),
    ]
    request = ChatRequest(
        model=MODEL[kind], system="You are terse.", messages=history, max_tokens=100
    )
    async with serving(kind, Script(tokens=words(2))) as (fake, provider):
        await collect(provider.stream(request))
    body = fake.requests[0].body
    if kind == "anthropic":
        assert body["system"] == "You are terse."
        assert body["max_tokens"] == 100
        assert body["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": "first question"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]},
            {"role": "user", "content": [{"type": "text", "text": "run something"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "running"},
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "run_code",
                        "input": {"code": "print(2)"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_1",
                        "content": "2\n",
                        "is_error": False,
                    },
                    {"type": "text", "text": "and now?"},
                ],
            },
        ]
    else:
        assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}], "role": "user"}
        assert body["generationConfig"] == {"maxOutputTokens": 100}
        assert body["contents"] == [
            {"role": "user", "parts": [{"text": "first question"}]},
            {"role": "model", "parts": [{"text": "first answer"}]},
            {"role": "user", "parts": [{"text": "run something"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "running"},
                    {
                        "functionCall": {
                            "id": "call_1",
                            "name": "run_code",
                            "args": {"code": "print(2)"},
                        }
                    },
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "call_1",
                            "name": "run_code",
                            "response": {"output": "2\n"},
                        }
                    },
                    {"text": "and now?"},
                ],
            },
        ]


async def test_anthropic_request_shape_and_key_header() -> None:
    async with serving("anthropic", Script(tokens=words(2))) as (fake, provider):
        await collect(provider.stream(ask("anthropic")))
    recorded = fake.requests[0]
    assert recorded.path == "/v1/messages"
    # This SDK sends the key as a bearer token (the API takes x-api-key too).
    sent_key = recorded.headers.get("x-api-key") or recorded.headers["authorization"]
    assert sent_key.removeprefix("Bearer ") == API_KEY
    assert recorded.body["stream"] is True
    assert recorded.body["model"] == "claude-test"


async def test_gemini_calls_the_pinned_api_version_with_sse() -> None:
    async with serving("gemini", Script(tokens=words(2))) as (fake, provider):
        await collect(provider.stream(ask("gemini")))
    assert isinstance(fake, GeminiFake)
    recorded = fake.requests[0]
    assert recorded.path == "/v1beta/models/gemini-test:streamGenerateContent"
    assert recorded.query == {"alt": "sse"}
    assert recorded.headers["x-goog-api-key"] == API_KEY
    assert fake.versions_seen == ["v1beta"]


# --- cancellation ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pace", ["holding", "streaming"])
async def test_closing_after_five_deltas_closes_the_provider_connection(
    kind: Kind, pace: str
) -> None:
    script = (
        Script(tokens=words(30), hold_after=10)
        if pace == "holding"
        else Script(tokens=words(400), token_delay=0.005)
    )
    async with serving(kind, script) as (fake, provider):
        events = provider.stream(ask(kind))
        deltas = 0
        async for event in events:
            deltas += isinstance(event, TextDelta)
            if deltas == 5:
                break
        await events.aclose()
        await within(fake.disconnected, "the fake seeing its connection closed")
    assert fake.streams_completed == 0
    assert not fake.last_token_sent.is_set()


@pytest.mark.parametrize("kind", KINDS)
async def test_cancelling_the_consumer_task_closes_the_provider_connection(kind: Kind) -> None:
    async with serving(kind, Script(tokens=words(30), hold_after=10)) as (fake, provider):
        five = asyncio.Event()

        async def consume() -> None:
            deltas = 0
            async with aclosing(provider.stream(ask(kind))) as events:
                async for _ in events:
                    deltas += 1
                    if deltas == 5:
                        five.set()

        task = asyncio.create_task(consume())
        await within(five, "five deltas")
        await within(fake.holding, "the fake holding")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await within(fake.disconnected, "the fake seeing its connection closed")
    assert fake.streams_completed == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_cancelling_before_the_first_token_closes_the_request(kind: Kind) -> None:
    async with serving(kind, Script(hold_before_response=True)) as (fake, provider):
        task = asyncio.create_task(collect(provider.stream(ask(kind))))
        await within(fake.holding, "the request reaching the fake")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await within(fake.disconnected, "the fake seeing its connection closed")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stalled_stream_fails_after_the_timeout(kind: Kind) -> None:
    script = Script(tokens=words(30), hold_after=5)
    async with serving(kind, script, provider_timeout_seconds=0.5) as (fake, provider):
        deltas, error = await failure_of(provider.stream(ask(kind)))
        await within(fake.disconnected, "the fake seeing its connection closed")
    assert deltas == 5
    assert isinstance(error, ProviderStreamError)
    assert isinstance(error.error, Unavailable)
    assert error.error.reason == "PROVIDER_UNAVAILABLE"


# --- retries and errors ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limited_twice_then_success(kind: Kind) -> None:
    async with serving(kind, Script(tokens=words(20), statuses=[429, 429])) as (fake, provider):
        events = await collect(provider.stream(ask(kind)))
    assert len(texts(events)) == 20
    assert len(fake.requests) == 3


@pytest.mark.parametrize(("kind", "status"), [("anthropic", 529), ("gemini", 503)])
async def test_overloaded_then_success(kind: Kind, status: int) -> None:
    async with serving(kind, Script(tokens=words(20), statuses=[status])) as (fake, provider):
        events = await collect(provider.stream(ask(kind)))
    assert len(texts(events)) == 20
    assert len(fake.requests) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limited_forever_is_resource_exhausted_with_retry_after(kind: Kind) -> None:
    script = Script(status_forever=429, retry_after="0.02")
    async with serving(kind, script) as (fake, provider):
        with pytest.raises(ResourceExhausted) as caught:
            await collect(provider.stream(ask(kind)))
    assert caught.value.reason == "PROVIDER_RATE_LIMITED"
    assert caught.value.retry_after == timedelta(seconds=0.02)
    assert caught.value.metadata["provider"] == kind
    assert len(fake.requests) == ATTEMPTS


@pytest.mark.parametrize("kind", KINDS)
async def test_a_long_retry_after_is_reported_at_once(kind: Kind) -> None:
    script = Script(status_forever=429, retry_after="30")
    async with serving(kind, script) as (fake, provider):
        with pytest.raises(ResourceExhausted) as caught:
            await collect(provider.stream(ask(kind)))
    assert caught.value.retry_after == timedelta(seconds=30)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limited_without_retry_after_still_says_when(kind: Kind) -> None:
    async with serving(kind, Script(status_forever=429)) as (_, provider):
        with pytest.raises(ResourceExhausted) as caught:
            await collect(provider.stream(ask(kind)))
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > timedelta(0)


@pytest.mark.parametrize("kind", KINDS)
async def test_server_errors_forever_are_unavailable(kind: Kind) -> None:
    async with serving(kind, Script(status_forever=500)) as (fake, provider):
        with pytest.raises(Unavailable) as caught:
            await collect(provider.stream(ask(kind)))
    assert caught.value.reason == "PROVIDER_UNAVAILABLE"
    assert len(fake.requests) == ATTEMPTS


@pytest.mark.parametrize("kind", KINDS)
async def test_a_bad_request_is_not_retried(kind: Kind) -> None:
    async with serving(kind, Script(status_forever=400)) as (fake, provider):
        with pytest.raises(Unavailable):
            await collect(provider.stream(ask(kind)))
    assert len(fake.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_an_unreachable_provider_is_unavailable(kind: Kind) -> None:
    fake: FakeProviderServer = AnthropicFake() if kind == "anthropic" else GeminiFake()
    async with fake as base_url:
        pass  # the port is closed again: connections are refused
    settings = make_settings(**{f"{kind}_api_key": API_KEY, f"{kind}_base_url": base_url})
    provider: ChatProvider = (
        AnthropicProvider(settings) if kind == "anthropic" else GeminiProvider(settings)
    )
    try:
        with pytest.raises(Unavailable) as caught:
            await collect(provider.stream(ask(kind)))
    finally:
        await provider.aclose()
    assert caught.value.reason == "PROVIDER_UNAVAILABLE"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_refused_key_is_failed_precondition_and_never_echoed(kind: Kind) -> None:
    wrong_key = "sk-wrong-DO-NOT-LEAK-4242424242"
    script = Script(expected_api_key="sk-the-right-one")
    async with serving(kind, script, api_key=wrong_key) as (fake, provider):
        with pytest.raises(FailedPrecondition) as caught:
            await collect(provider.stream(ask(kind)))
    error = caught.value
    assert error.reason == "PROVIDER_AUTH_FAILED"
    assert len(fake.requests) == 1  # not retried
    # The fake quoted the key it refused, as some providers do; none of it reaches us.
    shown = [
        str(error),
        repr(error),
        error.message,
        *error.metadata.values(),
        "".join(traceback.format_exception(error)),
    ]
    assert not any(wrong_key in text for text in shown)
    assert error.__cause__ is None


@pytest.mark.parametrize(
    ("kind", "status"), [("anthropic", 401), ("anthropic", 403), ("gemini", 401), ("gemini", 403)]
)
async def test_auth_statuses_are_failed_precondition(kind: Kind, status: int) -> None:
    async with serving(kind, Script(status_forever=status)) as (_, provider):
        with pytest.raises(FailedPrecondition) as caught:
            await collect(provider.stream(ask(kind)))
    assert caught.value.reason == "PROVIDER_AUTH_FAILED"


@pytest.mark.parametrize("kind", KINDS)
async def test_an_error_after_ten_tokens_is_raised_after_exactly_ten_deltas(kind: Kind) -> None:
    async with serving(kind, Script(tokens=words(30), error_after=10)) as (fake, provider):
        deltas, error = await failure_of(provider.stream(ask(kind)))
    assert deltas == 10
    assert isinstance(error, ProviderStreamError)
    assert isinstance(error.error, Unavailable)
    assert error.error.reason == "PROVIDER_UNAVAILABLE"
    assert len(fake.requests) == 1  # never retried once tokens went out


@pytest.mark.parametrize("kind", KINDS)
async def test_a_rate_limit_in_the_stream_keeps_its_meaning(kind: Kind) -> None:
    script = Script(tokens=words(30), error_after=3, error_status=429)
    async with serving(kind, script) as (_, provider):
        deltas, error = await failure_of(provider.stream(ask(kind)))
    assert deltas == 3
    assert isinstance(error, ProviderStreamError)
    assert isinstance(error.error, ResourceExhausted)


@pytest.mark.parametrize("kind", KINDS)
async def test_an_error_before_the_first_token_is_retried(kind: Kind) -> None:
    async with serving(kind, Script(tokens=words(30), error_after=0)) as (fake, provider):
        deltas, error = await failure_of(provider.stream(ask(kind)))
    assert deltas == 0
    assert isinstance(error, Unavailable)  # a plain ForgeError: nothing was relayed
    assert len(fake.requests) == ATTEMPTS


# --- echo ------------------------------------------------------------------------------


def echo(**overrides: object) -> EchoProvider:
    return EchoProvider(make_settings(**overrides))


async def test_echo_streams_a_deterministic_answer_word_by_word() -> None:
    request = ask("echo", "hello there")
    first = await collect(echo().stream(request))
    second = await collect(echo().stream(request))
    assert first == second
    deltas = texts(first)
    assert len(deltas) >= 20
    assert "".join(deltas) == compose(request).text
    assert "hello there" in "".join(deltas)
    last = first[-1]
    assert last == Finish("stop", Usage(input_tokens=2, output_tokens=len(deltas)))


async def test_echo_is_paced() -> None:
    delay = 0.005
    provider = echo(echo_token_delay_ms=delay * 1000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await collect(provider.stream(ask("echo")))
    elapsed = loop.time() - started
    deltas = len(texts(events))
    assert deltas >= 20
    assert elapsed >= delay * deltas * 0.9  # one delay per delta, on a fixed schedule


async def test_echo_stops_when_the_consumer_closes() -> None:
    events = echo(echo_token_delay_ms=1.0).stream(ask("echo"))
    received = [await anext(events) for _ in range(5)]
    await events.aclose()
    assert len(texts(received)) == 5
    with pytest.raises(StopAsyncIteration):
        await anext(events)


async def test_echo_answers_a_code_request_with_a_fenced_block() -> None:
    events = await collect(echo().stream(ask("echo", "write a function that adds two numbers")))
    answer = "".join(texts(events))
    assert answer.count("```python\n# file: main.py\n") == 1
    code = answer.split("```python\n", 1)[1].split("```", 1)[0]
    compile(code, "main.py", "exec")  # the block is real Python


async def test_echo_answers_two_files_with_two_blocks() -> None:
    prompt = "write a python program in two files: app.py and helpers.py"
    answer = "".join(texts(await collect(echo().stream(ask("echo", prompt)))))
    assert answer.count("```python\n") == 2
    assert "# file: helpers.py" in answer
    assert "# file: app.py" in answer
    assert "from helpers import describe" in answer


async def test_echo_code_language_follows_the_prompt() -> None:
    answer = compose(ask("echo", "write a javascript function to greet")).text
    assert "```javascript\n// file: main.js\n" in answer


async def test_echo_respects_max_tokens() -> None:
    events = await collect(echo().stream(ask("echo", max_tokens=7)))
    assert len(texts(events)) == 7
    assert events[-1] == Finish("max_tokens", Usage(input_tokens=2, output_tokens=7))


async def test_echo_calls_an_offered_tool_and_reports_its_result() -> None:
    tool = ToolSpec("run_code", "Runs code")
    request = ask("echo", 'please\n/tool run_code {"code": "print(1)"}', tools=[tool])
    events = await collect(echo().stream(request))
    call = next(event for event in events if isinstance(event, ToolCallRequest))
    assert call.name == "run_code"
    assert json.loads(call.arguments_json) == {"code": "print(1)"}
    last = events[-1]
    assert isinstance(last, Finish)
    assert last.reason == "tool_use"
    follow_up = ChatRequest(
        model="echo",
        messages=[
            *request.messages,
            ChatMessage.assistant("", [ToolCall(call.id, call.name, call.arguments_json)]),
            ChatMessage.tool([ToolResult(call.id, "run_code", "1")]),
        ],
        tools=[tool],
    )
    answer = "".join(texts(await collect(echo().stream(follow_up))))
    assert answer == "The tool run_code returned: 1"


# --- history ---------------------------------------------------------------------------


def _turn(n: int) -> list[ChatMessage]:
    return [ChatMessage.user(f"question {n} " + "x" * 40), ChatMessage.assistant(f"answer {n}")]


def test_trimming_keeps_the_system_prompt_and_the_newest_turns() -> None:
    history = [message for n in range(10) for message in _turn(n)]
    turn_cost = sum(estimate_message_tokens(message) for message in _turn(0))
    system = "s" * 40  # 10 tokens
    trimmed = trim_history(system, history, budget=10 + 3 * turn_cost)
    assert trimmed.messages == history[-6:]
    assert trimmed.dropped == 14
    assert trimmed.estimated_tokens == 10 + 3 * turn_cost


def test_trimming_never_splits_a_tool_call_from_its_result() -> None:
    call = ToolCall("c1", "run_code", '{"code": "' + "y" * 200 + '"}')
    history = [
        *_turn(0),
        ChatMessage.user("run it"),
        ChatMessage.assistant("", [call]),
        ChatMessage.tool([ToolResult("c1", "run_code", "ok")]),
        ChatMessage.assistant("done"),
        ChatMessage.user("thanks"),
    ]
    budget = sum(estimate_message_tokens(message) for message in history[2:]) - 1
    trimmed = trim_history("", history, budget=budget)
    assert trimmed.messages == history[-1:]  # the tool turn did not fit whole: left out whole
    roomier = trim_history("", history, budget=budget + 1)
    assert roomier.messages == history[2:]


def test_trimming_keeps_the_newest_turn_even_over_budget() -> None:
    history = [ChatMessage.user("z" * 4000)]
    trimmed = trim_history("system", history, budget=10)
    assert trimmed.messages == history
    assert trimmed.dropped == 0


# --- registry --------------------------------------------------------------------------


def test_without_keys_only_echo_is_listed_and_is_the_default() -> None:
    registry = ProviderRegistry(make_settings())
    assert [model.id for model in registry.models()] == ["echo"]
    assert registry.default_model == "echo"
    resolved = registry.resolve("echo")
    assert resolved.provider.name == "echo"
    with pytest.raises(FailedPrecondition) as caught:
        registry.resolve("anthropic/claude-sonnet-4-5")
    assert caught.value.reason == "PROVIDER_NOT_CONFIGURED"


@pytest.mark.parametrize("model_id", ["openai/gpt-5", "anthropic/", "gemini/../x", "echo2", ""])
def test_unknown_models_are_invalid_arguments(model_id: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ProviderRegistry(make_settings()).resolve(model_id, field="agent.model")
    assert caught.value.reason == "UNKNOWN_MODEL"
    assert [v.field for v in caught.value.violations] == ["agent.model"]


async def test_configured_providers_are_listed_and_resolved() -> None:
    settings = make_settings(
        anthropic_api_key=API_KEY,
        gemini_api_key=API_KEY,
        anthropic_models=["claude-a", "claude-b"],
        gemini_models=["gemini-a"],
    )
    registry = ProviderRegistry(settings)
    try:
        ids = [model.id for model in registry.models()]
        assert ids == ["anthropic/claude-a", "anthropic/claude-b", "gemini/gemini-a", "echo"]
        assert registry.default_model == "anthropic/claude-a"
        resolved = registry.resolve("gemini/gemini-2.5-flash-lite")
        assert (resolved.id, resolved.provider.name, resolved.name) == (
            "gemini/gemini-2.5-flash-lite",
            "gemini",
            "gemini-2.5-flash-lite",
        )
        listed = {model.id: model for model in registry.models()}
        assert API_KEY not in repr(listed)
    finally:
        await registry.aclose()


async def test_the_default_model_can_be_chosen() -> None:
    settings = make_settings(gemini_api_key=API_KEY, default_model="echo")
    registry = ProviderRegistry(settings)
    try:
        assert registry.default_model == "echo"
        assert registry.models()[0].id == "echo"
    finally:
        await registry.aclose()
    with pytest.raises(ValueError, match="default_model"):
        ProviderRegistry(make_settings(default_model="anthropic/claude-x"))


async def test_registry_streams_through_the_resolved_provider() -> None:
    registry = ProviderRegistry(make_settings())
    resolved = registry.resolve(registry.default_model)
    request = ChatRequest(model=resolved.name, messages=[ChatMessage.user("hi")])
    events = await collect(resolved.provider.stream(request))
    assert isinstance(events[-1], Finish)
