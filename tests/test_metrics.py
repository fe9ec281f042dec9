"""Prometheus metrics: a server with `metrics_address` serves /metrics on a port of its own,
and what an operator reads there follows the calls it serves."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from forge.agents.v1 import agents_pb2

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
from tests.runs.conftest import agents, start_run, watch
from tests.support.metrics import Samples, scrape, value
from tests.support.own_server import own_server
from tests.support.waiting import eventually

CHAT = "/forge.agents.v1.AgentService/Chat"
CREATE_CONVERSATION = "/forge.agents.v1.AgentService/CreateConversation"
# The echo model answers word by word, one every 20 ms: about 4 s for this message.
LONG_MESSAGE = " ".join(f"word{i}" for i in range(200))


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


async def _scraped_when(app: ForgeServer, holds: Callable[[Samples], bool]) -> Samples:
    async def probe() -> Samples | None:
        samples = await scrape(app)
        return samples if holds(samples) else None

    return await eventually(probe, timeout=20)


def _ended(samples: Samples, status: str) -> float:
    return value(samples, "forge_runs_ended_total", status=status)


def _run_tokens(samples: Samples) -> float:
    return value(samples, "forge_relayed_tokens_total", source="run", provider="echo")


async def test_a_run_is_active_while_driven_then_counted_by_its_status(
    metrics_server: ForgeServer,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metrics_server.port}") as channel:
        team = await new_team(channel)
        before = await scrape(metrics_server)
        assert value(before, "forge_runs_active") == 0
        # The echo model answers the goal word by word: about 4 s of streamed text.
        run = await start_run(channel, team.owner, team.project_id, LONG_MESSAGE)
        await _scraped_when(metrics_server, lambda s: value(s, "forge_runs_active") == 1)
        watched = await watch(channel, team.owner, run.id)
        assert watched.last.completed.status == agents_pb2.RUN_STATUS_SUCCEEDED
        after = await _scraped_when(
            metrics_server,
            lambda s: (
                _ended(s, "succeeded") == _ended(before, "succeeded") + 1
                and value(s, "forge_runs_active") == 0
            ),
        )
    assert _run_tokens(after) >= _run_tokens(before) + 200  # one token or more a word
    assert _ended(after, "cancelled") == _ended(before, "cancelled")
    assert _ended(after, "failed") == _ended(before, "failed")


async def test_a_cancelled_run_is_counted_as_cancelled(metrics_server: ForgeServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metrics_server.port}") as channel:
        team = await new_team(channel)
        before = await scrape(metrics_server)
        run = await start_run(channel, team.owner, team.project_id, LONG_MESSAGE)
        await _scraped_when(metrics_server, lambda s: value(s, "forge_runs_active") == 1)
        cancelled = await agents(channel).CancelRun(
            agents_pb2.CancelRunRequest(run_id=run.id), metadata=team.owner.metadata, timeout=10
        )
        assert cancelled.status == agents_pb2.RUN_STATUS_CANCELLED
        after = await _scraped_when(
            metrics_server,
            lambda s: (
                _ended(s, "cancelled") == _ended(before, "cancelled") + 1
                and value(s, "forge_runs_active") == 0
            ),
        )
    assert _ended(after, "succeeded") == _ended(before, "succeeded")
