"""Sandbox executions in the Prometheus metrics of a real server on Docker: each one that
ends is counted by its exit reason and its duration observed, once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from google.protobuf import duration_pb2

from server.app import ForgeServer
from server.db.embedded import EmbeddedPostgres
from tests.agents.support import Team, new_team
from tests.sandbox.conftest import sandbox_settings, start_server
from tests.sandbox.support import namespace
from tests.support.accounts import register
from tests.support.metrics import Samples, scrape, value
from tests.support.waiting import eventually

DURATION = "forge_sandbox_exec_duration_seconds"


@pytest.fixture(scope="module")
async def metered(
    docker_engine: None, postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ForgeServer]:
    url = await postgres.ensure_database("forge_sandbox_metrics")
    settings = sandbox_settings(
        url,
        tmp_path_factory.mktemp("sandbox-metrics"),
        sandbox_namespace=namespace("metrics"),
        sandbox_pool_size=0,
        metrics_address="127.0.0.1:0",
    )
    app = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            await register(channel, display_name="Metrics Admin")  # the first: admin
        yield app
    finally:
        await app.stop(grace=0)


def _execs(samples: Samples, reason: str) -> float:
    return value(samples, "forge_sandbox_execs_total", reason=reason)


async def _exec(
    sandboxes: sandbox_pb2_grpc.SandboxServiceAsyncStub,
    team: Team,
    request: sandbox_pb2.ExecRequest,
) -> sandbox_pb2.ExecExit:
    call = sandboxes.Exec(request, metadata=team.owner.metadata, timeout=30)
    events = [event async for event in call]
    assert events[-1].HasField("exit"), events[-3:]
    return events[-1].exit


async def test_ended_executions_are_counted_by_exit_reason(metered: ForgeServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        team = await new_team(channel)
        sandboxes = sandbox_pb2_grpc.SandboxServiceStub(channel)
        sandbox = await sandboxes.CreateSandbox(
            sandbox_pb2.CreateSandboxRequest(
                project_id=team.project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
            ),
            metadata=team.owner.metadata,
            timeout=60,
        )
        before = await scrape(metered)

        failing = sandbox_pb2.ExecRequest(sandbox_id=sandbox.id)
        failing.shell = "exit 3"
        exited = await _exec(sandboxes, team, failing)
        assert exited.reason == sandbox_pb2.EXIT_REASON_EXITED
        assert exited.exit_code == 3

        second = duration_pb2.Duration(seconds=1)
        endless = sandbox_pb2.ExecRequest(sandbox_id=sandbox.id, argv=["sleep", "60"])
        endless.timeout.CopyFrom(second)
        timed_out = await _exec(sandboxes, team, endless)
        assert timed_out.reason == sandbox_pb2.EXIT_REASON_TIMEOUT

        # The end is recorded right after the caller has its `exit` event.
        async def both_counted() -> Samples | None:
            samples = await scrape(metered)
            counted = value(samples, f"{DURATION}_count") - value(before, f"{DURATION}_count")
            return samples if counted == 2 else None

        after = await eventually(both_counted)
        await sandboxes.DeleteSandbox(
            sandbox_pb2.DeleteSandboxRequest(sandbox_id=sandbox.id),
            metadata=team.owner.metadata,
            timeout=30,
        )
    assert _execs(after, "exited") == _execs(before, "exited") + 1
    assert _execs(after, "timeout") == _execs(before, "timeout") + 1
    assert _execs(after, "cancelled") == _execs(before, "cancelled")
    # The timed-out one ran for its second at least: never in a bucket below 1 s.
    assert value(after, f"{DURATION}_sum") - value(before, f"{DURATION}_sum") >= 1.0
    quick = [value(samples, f"{DURATION}_bucket", le="0.5") for samples in (before, after)]
    assert quick[1] - quick[0] <= 1
