"""Load shedding (server/core/loop_load.py): an event loop over its load target makes chat
streams hold their deltas and send fewer, larger events with the same text; one that keeps
up holds nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import grpc
import pytest

from server.app import ForgeServer
from server.core.loop_load import LAG_LIMIT, MIN_HOLD, LoopLoad
from server.db.embedded import EmbeddedPostgres
from server.llm import Finish, ProviderEvent, TextDelta, Usage
from server.llm.coalesce import coalesced
from tests.agents.support import (
    chat_call,
    delta_text,
    event_shape,
    messages,
    new_conversation,
    new_team,
    read_rest,
)
from tests.support.own_server import own_server
from tests.support.waiting import eventually

DEADLINE = 20.0


def test_holds_grow_while_the_loop_is_over_its_target_and_end_once_it_is_well_under() -> None:
    load = LoopLoad(busy_target=0.75, max_hold=0.5)
    assert load.hold == 0
    assert not load.overloaded
    holds = []
    for _ in range(12):
        load.observe(busy=0.95, lag=0.0)
        holds.append(load.hold)
    # Smoothed: not over at the first busy sample, then holding from MIN_HOLD upwards.
    assert holds[0] == 0
    assert min(hold for hold in holds if hold) == MIN_HOLD
    assert holds == sorted(holds)
    assert holds[-1] == 0.5
    assert load.overloaded

    for _ in range(6):
        load.observe(busy=0.7, lag=0.0)  # under the target, but not well under: held as long
    assert load.hold == 0.5
    assert not load.overloaded
    for _ in range(20):
        load.observe(busy=0.2, lag=0.0)
    assert load.hold == 0


def test_a_loop_that_wakes_late_is_over_its_target_whatever_its_cpu_share() -> None:
    # A process starved of its core spends little CPU, but everything in it waits.
    load = LoopLoad(busy_target=0.75, max_hold=0.5)
    for _ in range(3):
        load.observe(busy=0.1, lag=LAG_LIMIT * 4)
    assert load.hold > 0


def test_holding_switched_off_never_holds() -> None:
    load = LoopLoad(busy_target=0.75, max_hold=0.0)
    for _ in range(5):
        load.observe(busy=1.0, lag=1.0)
    assert load.hold == 0


def _true_when(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return condition()

    return probe


async def test_the_sampler_sees_a_busy_loop_and_then_an_idle_one() -> None:
    load = LoopLoad(busy_target=0.3, max_hold=0.2, interval=0.02)
    await load.start()
    burning = True

    async def burn() -> None:
        while burning:
            end = time.thread_time() + 0.002
            while time.thread_time() < end:
                pass
            await asyncio.sleep(0)

    burner = asyncio.create_task(burn())
    try:
        await eventually(_true_when(lambda: load.hold > 0), timeout=DEADLINE)
        assert load.busy > 0.3
    finally:
        burning = False
        await burner
    try:
        await eventually(_true_when(lambda: load.hold == 0), timeout=DEADLINE)
    finally:
        await load.stop()


async def paced_deltas(count: int, every: float) -> AsyncGenerator[ProviderEvent, None]:
    for index in range(count):
        await asyncio.sleep(every)
        yield TextDelta(f"w{index} ")
    yield Finish("stop", Usage(1, count))


async def test_an_overloaded_loop_sends_the_same_text_in_fewer_events() -> None:
    load = LoopLoad(busy_target=0.5, max_hold=0.1)
    for _ in range(8):
        load.observe(busy=1.0, lag=0.0)
    assert load.hold == 0.1
    events = [event async for event in coalesced(paced_deltas(30, 0.01), load)]
    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert "".join(delta.text for delta in deltas) == "".join(f"w{i} " for i in range(30))
    assert len(deltas) <= 15, len(deltas)
    assert events[-1] == Finish("stop", Usage(1, 30))


@pytest.fixture(scope="module")
async def shedding_server(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ForgeServer]:
    # A target any chat traffic is over: the server holds deltas from its first busy moment.
    url = await postgres.ensure_database("forge_load_shedding")
    async with own_server(
        url,
        tmp_path_factory.mktemp("shedding"),
        "shedding-admin",
        stream_busy_target=0.01,
        stream_max_hold_ms=200,
        echo_token_delay_ms=5,
        user_max_concurrent_streams=100,
    ) as app:
        yield app


async def test_chats_on_a_server_over_its_target_stream_every_word_in_fewer_events(
    shedding_server: ForgeServer,
) -> None:
    prompt = " ".join(f"word{i}" for i in range(150))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{shedding_server.port}") as channel:
        team = await new_team(channel)
        conversations = [
            await new_conversation(channel, team.owner, team.project_id) for _ in range(6)
        ]
        answers = await asyncio.gather(
            *(
                read_rest(chat_call(channel, team.owner, conversation.id, prompt))
                for conversation in conversations
            )
        )
        for conversation, events in zip(conversations, answers, strict=True):
            assert event_shape(events) == ["started", "delta", "usage", "completed"]
            assert [event.seq for event in events] == list(range(1, len(events) + 1))
            text = delta_text(events)
            assert all(f"word{i}" in text for i in range(150))
            stored = (await messages(channel, team.owner, conversation.id))[-1]
            assert stored.content == text
            # The usage event counts the model's tokens: more than the deltas it came in.
            deltas = sum(1 for event in events if event.HasField("delta"))
            usage = next(event.usage for event in events if event.HasField("usage"))
            assert deltas < usage.output_tokens / 2, (deltas, usage.output_tokens)
