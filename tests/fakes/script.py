"""What a fake provider does for a request, and what it records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def words(count: int, stem: str = "tok") -> list[str]:
    """`count` distinct tokens, each with the space after it: "tok0 ", "tok1 ", …"""
    return [f"{stem}{i} " for i in range(count)]


@dataclass
class FakeToolCall:
    name: str
    arguments: Mapping[str, object]
    id: str | None = None
    """None: the fake makes one up (anthropic) or sends none (gemini, like the real API)."""


@dataclass
class Script:
    tokens: list[str] = field(default_factory=lambda: words(30))
    token_delay: float = 0.0
    """Seconds between tokens."""
    statuses: list[int] = field(default_factory=list)
    """HTTP error statuses answered, one per request in order, before a request succeeds."""
    status_forever: int | None = None
    """Every request is answered with this error status."""
    retry_after: str | None = None
    """Retry-After header of error answers (Gemini: also a RetryInfo in the body)."""
    error_after: int | None = None
    """After this many tokens, an in-stream error instead of the rest."""
    error_status: int = 500
    """Which error the in-stream error is (mapped to the provider's error type)."""
    hold_after: int | None = None
    """After this many tokens, wait for `release` (a stall, if never released)."""
    hold_before_response: bool = False
    """Wait for `release` before answering at all (no status line yet)."""
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    input_tokens: int = 17
    output_tokens: int | None = None
    """Reported output tokens; None: one per token plus 5 per tool call."""
    stop_reason: str | None = None
    """The provider's own stop/finish reason; None: the natural one."""
    expected_api_key: str | None = None
    """Requests with another key are refused the way the provider does (quoting the key)."""

    @property
    def reported_output_tokens(self) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        return len(self.tokens) + 5 * len(self.tool_calls)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    """Names in lower case."""
    body: Mapping[str, object]
