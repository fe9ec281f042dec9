"""Runs survive their server: two `python -m server` processes on one database; the one
running a run is SIGKILLed (another takes the expired lease and completes the run) or
SIGTERMed (it hands the run over at once)."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from forge.agents.v1 import agents_pb2

from server.db.embedded import EmbeddedPostgres
from tests.agents.support import new_team
from tests.runs.conftest import Watched, get_run, start_run, watch
from tests.runs.transcripts import check_transcript, transcript_messages
from tests.sandbox.support import namespace
from tests.support.accounts import register
from tests.support.process import ServerProcess

GOAL = "Count.\n\n```python\n# file: count.py\nprint(sum(range(10)))\n```\n"
TOKEN_DELAY_MS = 120
"""The echo model's pace: a model turn takes about a second."""

Spawn = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def spawn(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Spawn]:
    """Starts server processes sharing one fresh database, secret and sandbox namespace."""
    url = await postgres.ensure_database(f"forge_runs_{secrets.token_hex(4)}")
    secret = secrets.token_hex(32)
    started: list[ServerProcess] = []

    async def start(lease_seconds: float) -> ServerProcess:
        data_dir: Path = tmp_path_factory.mktemp("takeover")
        process = ServerProcess(
            {
                "FORGE_DATABASE_URL": url,
                "FORGE_JWT_SECRET": secret,
                "FORGE_SANDBOX_NAMESPACE": namespace("takeover"),
                "FORGE_DATA_DIR": str(data_dir),
                "FORGE_LOG_FORMAT": "text",
                "FORGE_LOG_LEVEL": "WARNING",
                "FORGE_BCRYPT_ROUNDS": "4",
                "FORGE_SHUTDOWN_GRACE_SECONDS": "1",
                "FORGE_ECHO_TOKEN_DELAY_MS": str(TOKEN_DELAY_MS),
                "FORGE_RUN_LEASE_SECONDS": str(lease_seconds),
                "FORGE_RUN_CLAIM_INTERVAL_SECONDS": "0.5",
                "FORGE_RUN_DELTA_FLUSH_MS": "10",
            }
        )
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        await process.kill()


def second_turn_streams(watched: Watched) -> bool:
    steps = [e.status.step for e in watched.of("status") if e.status.step]
    return bool(steps) and steps[-1] == 2 and watched.kinds[-1] == "delta"


def check_whole_run(watched: Watched) -> None:
    assert watched.seqs == list(range(1, len(watched.events) + 1))
    assert watched.kinds[-1] == "completed", watched.events[-3:]
    assert watched.last.completed.status == agents_pb2.RUN_STATUS_SUCCEEDED
    # No tool ran twice: one result per call, and one execution per bash call.
    calls = [e.tool_call.id for e in watched.of("tool_call")]
    assert len(calls) == len(set(calls))
    answered = [e.tool_result.tool_call_id for e in watched.of("tool_result")]
    assert sorted(answered) == sorted(calls)
    started = [e for e in watched.of("exec") if e.exec.HasField("started")]
    bash_calls = [e for e in watched.of("tool_call") if e.tool_call.name == "bash"]
    assert len(started) == len(bash_calls) == 1
    assert "45" in watched.last.completed.result


async def test_a_killed_owner_is_replaced_and_the_run_completes(spawn: Spawn) -> None:
    first = await spawn(2.0)
    second = await spawn(2.0)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as a,
        grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as b,
    ):
        await register(a, display_name="Admin")
        team = await new_team(a)
        run = await start_run(a, team.owner, team.project_id, GOAL)
        on_b = Watched()
        b_events = asyncio.create_task(watch(b, team.owner, run.id, into=on_b, timeout=90))
        on_a = Watched()
        a_events = asyncio.create_task(watch(a, team.owner, run.id, into=on_a, timeout=90))

        await on_b.wait_until(second_turn_streams)
        first.send_signal(signal.SIGKILL)
        await first.wait(10)
        with pytest.raises(grpc.aio.AioRpcError):
            await a_events

        watched = await asyncio.wait_for(b_events, 90)
        check_whole_run(watched)
        restarted = [e for e in watched.of("status") if "restarted" in e.status.message]
        assert [e.status.step for e in restarted] == [2]
        # What A's watcher saw before A died is the start of what B's saw.
        assert on_a.events == watched.events[: len(on_a.events)]
        final = await get_run(b, team.owner, run.id)
        assert final.status == agents_pb2.RUN_STATUS_SUCCEEDED
        assert final.last_seq == len(watched.events)
        # A reconnecting watcher replays the same run.
        assert (await watch(b, team.owner, run.id)).events == watched.events
        # The transcript: one message per completed turn and tool result, none twice (the
        # turn cut by the crash is not in it; its retry is, once).
        messages = await transcript_messages(b, team.owner, final.conversation_id)
        check_transcript(messages, GOAL, team.owner.user_id, watched)
        assert len(messages) == 1 + len(watched.of("usage")) + len(watched.of("tool_result"))
        assert len({m.id for m in messages}) == len(messages)


async def test_sigterm_hands_the_run_over_without_waiting_for_its_lease(spawn: Spawn) -> None:
    first = await spawn(60.0)
    second = await spawn(60.0)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as a,
        grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as b,
    ):
        await register(a, display_name="Admin")
        team = await new_team(a)
        run = await start_run(a, team.owner, team.project_id, GOAL)
        on_b = Watched()
        b_events = asyncio.create_task(watch(b, team.owner, run.id, into=on_b, timeout=60))
        await on_b.wait_until(second_turn_streams)
        first.send_signal(signal.SIGTERM)
        assert await first.wait(20) == 0
        # Far sooner than the 60 s lease: B took the run over when A released it.
        watched = await asyncio.wait_for(b_events, 40)
        final = await get_run(b, team.owner, run.id)
        messages = await transcript_messages(b, team.owner, final.conversation_id)
    check_whole_run(watched)
    assert not [e for e in watched.of("error")]
    check_transcript(messages, GOAL, team.owner.user_id, watched)
