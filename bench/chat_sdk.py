"""The chat relay's SDK path (issue 18: "measure with the real Anthropic SDK path against its
fake"): the same Forge server relays answers streamed by the Anthropic Messages API on
loopback (bench/peers/anthropic_api.py, on the load core) at the echo relay's pace, through
its real provider (server/llm/anthropic.py: the `anthropic` SDK, its HTTP transport, SSE
decoder and an event model per delta). Its windows take turns with the echo relay's, so the
difference per token is what the SDK's reading and parsing add to each relayed token."""

from __future__ import annotations

import re
import sys
from typing import Any

from bench.harness import LOAD_CORE, Measured, Report, Row, median, per_token_us, spawn
from bench.peers.anthropic_api import API_KEY, MODEL

B = "chat"
TARGET = "anthropic"
API = "anthropic_api"
"""The fake API's process, whose CPU each window reads too."""
ANSWER_TOKENS = 3000
"""Longer than any relay phase streams (60 s at 50 tok/s): streams are cancelled after it."""
_SERVING = re.compile(rb"anthropic api: serving on (http://127\.0\.0\.1:\d+)")


async def start_api(delay_ms: int) -> tuple[Measured, str]:
    """The fake Anthropic API, paced like the echo relay, on the load generator's core."""
    measured, match = await spawn(
        [
            sys.executable,
            "-m",
            "bench.peers.anthropic_api",
            f'{{"token_delay_ms": {delay_ms}, "tokens": {ANSWER_TOKENS}}}',
        ],
        core=LOAD_CORE,
        ready=_SERVING,
    )
    assert match is not None
    return measured, match.group(1).decode()


def server_env(base_url: str) -> dict[str, str]:
    """What a Forge server needs to answer `MODEL` from the fake API (new chats keep the
    echo model: a configured provider would otherwise become their default)."""
    return {
        "FORGE_ANTHROPIC_API_KEY": API_KEY,
        "FORGE_ANTHROPIC_BASE_URL": base_url,
        "FORGE_DEFAULT_MODEL": "echo",
    }


def target(port: int, server_pid: int) -> dict[str, Any]:
    """The load generator's target: Forge's chats, asking for the Anthropic model."""
    return {"transport": "grpc", "port": port, "channels": 1, "pid": server_pid, "model": MODEL}


def rows(report: Report, relays: list[dict[str, Any]], echo_us: float) -> None:
    windows = [r["window"] for r in relays if r["target"] == TARGET]
    per_token = [per_token_us(w, TARGET) for w in windows]
    sdk_us = median(per_token)
    api_us = median([per_token_us(w, API) for w in windows])
    per_event = median([w["tokens"] / max(w["deltas"], 1) for w in windows])
    rate = median([w["tokens"] / w["seconds"] for w in windows])
    spread = ", ".join(f"{us:.1f}" for us in per_token)
    report.add(
        Row(
            B,
            "server CPU per token, Anthropic SDK path (fake API on loopback, same streams/pace)",
            f"{sdk_us:.1f} µs",
            note=f"{sdk_us / echo_us:.2f}x the echo model's ({sdk_us - echo_us:+.1f} µs: the "
            f"SDK's HTTP reads, SSE decoding and event models); median of windows {spread}; "
            f"{rate:.0f} tok/s, {per_event:.2f} tokens per event; the fake API "
            f"{api_us:.1f} µs per token on the load core",
        )
    )
