"""3. Through Envoy: GetProject with a JWT as REST/JSON through Envoy (and as gRPC through it)
against gRPC straight to the server, and Chat as SSE through Envoy against gRPC straight:
Envoy's added p50 latency and its CPU per call and per token.

Envoy runs as the gateway does (gateway/envoy.yaml: transcoder, CORS, gRPC-Web, access log
to stdout), with one worker thread, pinned to the server's core (core 0) with `taskset -a`:
the gateway shares the box with the server and takes its CPU from the same core."""

from __future__ import annotations

from typing import Any

import psutil

from bench.harness import (
    REPO_ROOT,
    SERVER_CORE,
    Report,
    Row,
    per_token_us,
    percentile,
    pin_process,
    run_load,
)
from bench.infra import Infra, forge_server
from bench.loadgen.chat_clients import forge_world
from gateway.launcher import EnvoyConfig, EnvoyProcess

B = "envoy"
ROUNDS = 300
LOAD_SECONDS = 2.0
LOAD_CONCURRENCY = 16
CHATS = 40
CHAT_WARMUP = 20
RELAY = {
    "kind": "relay",
    "streams": 100,
    "window": 5.0,
    "warmup": 1.0,
    "attempts": 3,
    "tokens_per_second": 50,
}
ADDED_TARGET_MS = 1.0
ROUTE_NAMES = {
    "grpc_direct": "gRPC direct",
    "grpc_envoy": "gRPC through Envoy",
    "rest_envoy": "REST/JSON through Envoy",
}


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


async def run(infra: Infra, report: Report) -> None:
    env = {"FORGE_SANDBOX_POOL_SIZE": "0", "FORGE_ECHO_TOKEN_DELAY_MS": "20"}
    async with forge_server(infra, env) as server:
        world = await forge_world(
            server.port, 2 * (CHATS + CHAT_WARMUP) + 10, "bench-envoy@example.com"
        )
        config = EnvoyConfig(
            listen_port=0,
            admin_port=0,
            upstream_host="127.0.0.1",
            upstream_port=server.port,
            descriptor_path=REPO_ROOT / "gen" / "forge.binpb",
            listen_host="127.0.0.1",
        )
        async with EnvoyProcess(config, concurrency=1) as envoy:
            assert envoy.proc is not None
            envoy_pid = envoy.proc.pid
            await pin_process(envoy_pid, SERVER_CORE)
            await envoy.wait_upstream_healthy()
            envoy_rss = psutil.Process(envoy_pid).memory_info().rss
            pids = {"server": server.measured.proc.pid, "envoy": envoy_pid}
            common = {
                "port": server.port,
                "envoy_url": envoy.base_url,
                "token": world.access_token,
                "project_id": world.project_id,
                "conversations": world.conversations,
                "pids": pids,
            }
            # Warm-up: connections, caches, the transcoder's first use.
            await run_load(
                "envoy",
                {**common, "phases": [{"kind": "unary_latency", "rounds": 50}]},
            )
            unary = await run_load(
                "envoy",
                {
                    **common,
                    "phases": [
                        {"kind": "unary_latency", "rounds": ROUNDS},
                        {
                            "kind": "unary_load",
                            "seconds": LOAD_SECONDS,
                            "concurrency": LOAD_CONCURRENCY,
                        },
                        {
                            "kind": "chat_latency",
                            "chats": CHATS,
                            "warmup": CHAT_WARMUP,
                            "words": 1,
                            "interval": 0.05,
                        },
                    ],
                },
            )
            relay = await run_load(
                "chat",
                {
                    "targets": {
                        "forge": {
                            "transport": "sse",
                            "port": server.port,
                            "base_url": envoy.base_url,
                            "path": "/v1/conversations/{conversation_id}:chat",
                            "pid": server.measured.proc.pid,
                        }
                    },
                    "pids": {"envoy": envoy_pid},
                    "phases": [{**RELAY, "target": "forge"}],
                },
            )
            envoy_peak_rss = max(envoy_rss, psutil.Process(envoy_pid).memory_info().rss)
    latency, load, chat = unary["phases"]
    _unary_rows(report, latency, load)
    _chat_rows(report, chat, relay["phases"][0], envoy_peak_rss)


def _unary_rows(report: Report, latency: dict[str, Any], load: dict[str, Any]) -> None:
    lat = latency["latencies"]
    direct = _ms(lat["grpc_direct"], 50)
    for route in ("rest_envoy", "grpc_envoy"):
        added = _ms(lat[route], 50) - direct
        report.add(
            Row(
                B,
                f"GetProject added p50, {ROUTE_NAMES[route]}",
                f"{added:.2f} ms",
                f"<= {ADDED_TARGET_MS:.0f} ms" if route == "rest_envoy" else "",
                added <= ADDED_TARGET_MS if route == "rest_envoy" else None,
                note=f"p50/p99 {_ms(lat[route], 50):.2f}/{_ms(lat[route], 99):.2f} ms vs gRPC "
                f"direct {direct:.2f}/{_ms(lat['grpc_direct'], 99):.2f} ms; one call in flight, "
                f"{ROUNDS} calls per route interleaved",
            )
        )
    for route in ("rest_envoy", "grpc_envoy"):
        figures = load[route]
        calls = max(figures["calls"], 1)
        direct_server = load["grpc_direct"]["cpu"]["server"] / max(load["grpc_direct"]["calls"], 1)
        report.add(
            Row(
                B,
                f"Envoy CPU per call, {ROUTE_NAMES[route]}",
                f"{figures['cpu']['envoy'] / calls * 1e6:.0f} µs",
                note=f"{LOAD_CONCURRENCY} in flight, {figures['calls'] / figures['seconds']:.0f} "
                f"calls/s; server {figures['cpu']['server'] / calls * 1e6:.0f} µs/call "
                f"(direct {direct_server * 1e6:.0f} µs/call)",
            )
        )
    load_errors = {f"{k} (load)": load[k]["errors"] for k in ROUTE_NAMES}
    _errors(report, "unary", {**latency["errors"], **load_errors})


def _chat_rows(report: Report, chat: dict[str, Any], relay: dict[str, Any], envoy_rss: int) -> None:
    first = chat["first_delta"]
    direct, sse = _ms(first["grpc_direct"], 50), _ms(first["sse_envoy"], 50)
    started = chat["started"]
    started_added = _ms(started["sse_envoy"], 50) - _ms(started["grpc_direct"], 50)
    report.add(
        Row(
            B,
            "Chat added time to first token p50, SSE through Envoy",
            f"{sse - direct:.2f} ms",
            f"<= {ADDED_TARGET_MS:.0f} ms",
            sse - direct <= ADDED_TARGET_MS,
            note=f"p50 {sse:.1f} ms vs gRPC direct {direct:.1f} ms; the started event "
            f"{started_added:.2f} ms later ({CHATS} chats per route after {CHAT_WARMUP} that open "
            f"the connections, interleaved, pace 20 ms)",
        )
    )
    window = relay["window"]
    report.add(
        Row(
            B,
            "Envoy CPU per token, SSE (one event per token)",
            f"{per_token_us(window, 'envoy'):.1f} µs",
            note=f"{RELAY['streams']} streams x 50 tok/s; server "
            f"{per_token_us(window, 'forge'):.1f} µs/token behind Envoy; "
            f"Envoy RSS {envoy_rss / 2**20:.0f} MiB",
        )
    )
    errors = {name: error for name, error in chat["errors"].items() if error}
    if relay.get("errors"):
        errors["relay"] = relay["first_error"]
    _errors(report, "chat", dict.fromkeys(errors, 1), next(iter(errors.values()), ""))


def _errors(report: Report, what: str, counts: dict[str, int], first: str = "") -> None:
    failed = {k: v for k, v in counts.items() if v}
    if failed:
        report.add(
            Row(
                B,
                f"{what}: failed calls",
                str(sum(failed.values())),
                note=f"{failed} {first[:100]}",
            )
        )
