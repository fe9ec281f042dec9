"""Prometheus metrics: a server with `metrics_address` serves /metrics on a port of its own,
and what an operator reads there follows the calls it serves."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2
from prometheus_client.parser import text_string_to_metric_families

from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from tests.agents.support import (
    chat_call,
    new_conversation,
    new_team,
    read_events,
    read_rest,
    stub,
)
from tests.support.own_server import own_server
from tests.support.waiting import eventually

CHAT = "/forge.agents.v1.AgentService/Chat"
CREATE_CONVERSATION = "/forge.agents.v1.AgentService/CreateConversation"
# The echo model answers word by word, one every 20 ms: about 4 s for this message.
LONG_MESSAGE = " ".join(f"word{i}" for i in range(200))

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
async def metrics_server(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ForgeServer]:
    url = await postgres.ensure_database("forge_metrics")
    async with own_server(
        url,
        tmp_path_factory.mktemp("metrics"),
        "metrics-admin",
        metrics_address="127.0.0.1:0",
        echo_token_delay_ms=20.0,
        event_loop_lag_interval_seconds=0.05,
    ) as app:
        yield app


async def scrape(app: ForgeServer) -> Samples:
    assert app.metrics_endpoint is not None
    url = f"http://127.0.0.1:{app.metrics_endpoint.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_streaming_chat_shows_in_the_metrics(metrics_server: ForgeServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metrics_server.port}") as channel:
        team = await new_team(channel)
        conversation = await new_conversation(channel, team.owner, team.project_id)
        before = await scrape(metrics_server)
        assert value(before, "forge_rpc_active_streams", method=CHAT) == 0
        call = chat_call(channel, team.owner, conversation.id, LONG_MESSAGE)
        events = await read_events(call, 3)  # started, then text
        assert events[-1].HasField("delta")
        during = await scrape(metrics_server)
        assert value(during, "forge_rpc_active_streams", method=CHAT) == 1
        tokens = value(during, "forge_relayed_tokens_total", source="chat", provider="echo")
        assert tokens > 0
        later = await eventually(lambda: _tokens_above(metrics_server, tokens), timeout=10)
        assert value(later, "forge_rpc_active_streams", method=CHAT) == 1
        rest = await read_rest(call)
        assert rest[-1].HasField("completed")

        async def chat_counted() -> Samples | None:
            samples = await scrape(metrics_server)
            done = value(samples, "forge_rpc_requests_total", method=CHAT, code="OK")
            return (
                samples
                if done == value(before, "forge_rpc_requests_total", method=CHAT, code="OK") + 1
                else None
            )

        after = await eventually(chat_counted)
        assert value(after, "forge_rpc_active_streams", method=CHAT) == 0
        assert value(after, "forge_rpc_duration_seconds_count", method=CHAT) >= 1
        assert value(after, "forge_rpc_requests_total", method=CREATE_CONVERSATION, code="OK") >= 1
        assert value(after, "forge_chat_time_to_first_token_seconds_count", provider="echo") >= 1


async def _tokens_above(app: ForgeServer, tokens: float) -> Samples | None:
    samples = await scrape(app)
    now = value(samples, "forge_relayed_tokens_total", source="chat", provider="echo")
    return samples if now > tokens else None


async def test_failed_calls_are_counted_by_code(metrics_server: ForgeServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metrics_server.port}") as channel:
        before = await scrape(metrics_server)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub(channel).CreateConversation(
                agents_pb2.CreateConversationRequest(), timeout=10
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        after = await scrape(metrics_server)
    counted = "forge_rpc_requests_total"
    assert value(after, counted, method=CREATE_CONVERSATION, code="UNAUTHENTICATED") == (
        value(before, counted, method=CREATE_CONVERSATION, code="UNAUTHENTICATED") + 1
    )


async def test_database_pool_and_event_loop_lag(metrics_server: ForgeServer) -> None:
    samples = await scrape(metrics_server)
    assert value(samples, "forge_db_pool_connections", state="size") >= 1
    assert value(samples, "forge_db_pool_connections", state="checked_out") >= 0
    lagged = await eventually(lambda: _lag_measured(metrics_server), timeout=10)
    assert value(lagged, "forge_event_loop_lag_seconds_count") >= 2


async def _lag_measured(app: ForgeServer) -> Samples | None:
    samples = await scrape(app)
    return samples if value(samples, "forge_event_loop_lag_seconds_count") >= 2 else None


async def test_servers_without_a_metrics_address_serve_none(
    tmp_path: Path, postgres: EmbeddedPostgres
) -> None:
    url = await postgres.ensure_database("forge_metrics_off")
    async with own_server(url, tmp_path, "no-metrics-admin") as app:
        assert app.metrics is None
        assert app.metrics_endpoint is None


async def test_the_grafana_dashboard_reads_only_series_the_server_exports(
    metrics_server: ForgeServer,
) -> None:
    dashboard = (Path(__file__).parent.parent / "deploy/grafana/forge.json").read_text()
    suffixes = r"(_bucket|_total|_count|_sum)?"
    used = {m.group(1) for m in re.finditer(rf"(forge_[a-z_]+?){suffixes}\b", dashboard)}
    assert len(used) >= 10
    assert metrics_server.metrics is not None
    exported = {family.name for family in metrics_server.metrics.registry.collect()}
    assert used <= exported, used - exported
