"""Admission of chat opens under a burst (core/admission.py): a bounded number open at once,
a bounded number wait in order, the rest are refused at once with SERVER_BUSY and RetryInfo;
and through a real server, a burst of chats is served or refused that way, never left to
wait without bound."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from forge_client import AsyncForge, RetryPolicy, agents, kind, projects

from server.app import ForgeServer
from server.core.admission import SERVER_BUSY, Admission
from server.core.errors import ResourceExhausted
from server.core.loop_load import LoopLoad
from server.db.embedded import EmbeddedPostgres
from tests.agents.support import (
    chat_call,
    new_conversation,
    new_team,
    read_rest,
    retry_info,
)
from tests.support.own_server import own_server
from tests.support.rpc import error_info


async def admitted(admission: Admission, work: Callable[[], Awaitable[None]]) -> None:
    entered = await admission.enter()
    try:
        await work()
    finally:
        admission.leave(entered)


async def test_places_are_handed_in_order_and_the_backlog_is_bounded() -> None:
    admission = Admission("testing", concurrency=1, backlog=2)
    order: list[int] = []
    release = asyncio.Event()

    async def one(index: int) -> None:
        async def work() -> None:
            order.append(index)
            await release.wait()

        await admitted(admission, work)

    first = asyncio.create_task(one(0))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(one(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    assert (admission.running, admission.waiting) == (1, 2)
    with pytest.raises(ResourceExhausted) as refused:
        await admission.enter()
    assert refused.value.reason == SERVER_BUSY
    # About the time the queue ahead needs, at least half a second, spread at random.
    assert refused.value.retry_after is not None
    assert 0.5 <= refused.value.retry_after.total_seconds() <= 30
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == [0, 1, 2]
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_waiter_that_goes_away_gives_its_turn_to_the_next() -> None:
    admission = Admission("testing", concurrency=1, backlog=5)
    release = asyncio.Event()
    done: list[int] = []

    async def one(index: int) -> None:
        async def work() -> None:
            await release.wait()
            done.append(index)

        await admitted(admission, work)

    holder = asyncio.create_task(one(0))
    await asyncio.sleep(0)
    gone, next_in_line = asyncio.create_task(one(1)), asyncio.create_task(one(2))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    await asyncio.gather(holder, next_in_line)
    assert done == [0, 2]
    assert (admission.running, admission.waiting) == (0, 0)


async def test_the_queue_holds_only_what_gets_its_turn_within_the_longest_wait() -> None:
    # Opens are first reckoned at 10 ms each: two waiters get their turn within 25 ms.
    admission = Admission("testing", concurrency=1, backlog=10, max_wait=0.025)
    holder_entered = await admission.enter()
    waiters = [asyncio.create_task(admission.enter()) for _ in range(2)]
    await asyncio.sleep(0)
    assert admission.waiting == 2
    with pytest.raises(ResourceExhausted) as refused:
        await admission.enter()
    assert refused.value.reason == SERVER_BUSY
    admission.leave(holder_entered)
    for waiter in waiters:
        admission.leave(await waiter)

    # Opens that take longer (a loaded server) leave room for fewer waiters: none here.
    async def slow_open() -> None:
        await asyncio.sleep(0.3)  # the open's own work, not a wait for an event

    await admitted(admission, slow_open)
    holder_entered = await admission.enter()
    with pytest.raises(ResourceExhausted):
        await admission.enter()
    admission.leave(holder_entered)
    assert (admission.running, admission.waiting) == (0, 0)


async def test_nothing_waits_while_the_event_loop_is_overloaded() -> None:
    load = LoopLoad(busy_target=0.5, max_hold=0.2)
    admission = Admission("testing", concurrency=1, backlog=10, load=load)
    holder_entered = await admission.enter()
    waiter = asyncio.create_task(admission.enter())  # room in the backlog: it waits
    await asyncio.sleep(0)
    assert admission.waiting == 1
    for _ in range(10):
        load.observe(busy=1.0, lag=0.0)
    assert load.overloaded
    with pytest.raises(ResourceExhausted) as refused:
        await admission.enter()
    assert refused.value.reason == SERVER_BUSY
    admission.leave(holder_entered)
    admission.leave(await waiter)
    # A free place is still taken at once: the streams being opened are what is shed.
    admission.leave(await admission.enter())
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_burst_of_refusals_is_told_to_come_back_later_and_later() -> None:
    # Each refused client is still to come back: those refused after many others are told
    # to wait longer, so that they do not all return before the server can let them in.
    admission = Admission("testing", concurrency=1, backlog=0)
    entered = await admission.enter()
    delays = []
    for _ in range(200):
        with pytest.raises(ResourceExhausted) as refused:
            await admission.enter()
        assert refused.value.retry_after is not None
        delays.append(refused.value.retry_after.total_seconds())
    admission.leave(entered)
    assert delays[0] <= 1.0  # the first: half a second, spread at random
    assert delays[-1] >= 1.5, delays[-1]


@pytest.fixture(scope="module")
async def busy_server(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ForgeServer]:
    url = await postgres.ensure_database("forge_admission")
    async with own_server(
        url,
        tmp_path_factory.mktemp("admission"),
        "admission-admin",
        chat_open_concurrency=1,
        chat_open_backlog=0,
        user_max_concurrent_streams=1000,
    ) as app:
        yield app


async def test_a_burst_of_chats_is_served_or_refused_with_retry_info(
    busy_server: ForgeServer,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{busy_server.port}") as channel:
        team = await new_team(channel)
        conversations = [
            await new_conversation(channel, team.owner, team.project_id) for _ in range(40)
        ]

        async def chat(conversation_id: str) -> str:
            refusal: grpc.aio.AioRpcError | None = None
            try:
                events = await read_rest(
                    chat_call(channel, team.owner, conversation_id, "hello there")
                )
            except grpc.aio.AioRpcError as error:
                refusal = error
            if refusal is None:
                assert events[-1].HasField("completed")
                return "served"
            assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refusal
            assert error_info(refusal).reason == SERVER_BUSY
            info = retry_info(refusal)
            assert info is not None
            assert info.retry_delay.ToTimedelta().total_seconds() >= 0.5
            return "refused"

        outcomes = await asyncio.gather(*(chat(c.id) for c in conversations))
        assert "served" in outcomes
        assert "refused" in outcomes
        # Once the burst is over, a chat is served at once.
        assert await chat(conversations[0].id) == "served"


async def test_the_python_client_retries_a_busy_server_until_its_chats_are_served(
    busy_server: ForgeServer,
) -> None:
    client = AsyncForge.connect(f"127.0.0.1:{busy_server.port}", retry=RetryPolicy(attempts=60))
    async with client:
        await client.register(f"busy-{uuid.uuid4().hex[:8]}@example.com", "Passw0rd-busy", "B")
        project = await client.projects.create_project(
            projects.CreateProjectRequest(project=projects.Project(name="busy"))
        )
        conversations = [
            await client.agents.create_conversation(
                agents.CreateConversationRequest(project_id=project.id)
            )
            for _ in range(20)
        ]

        async def chat(conversation_id: str) -> str:
            events = [event async for event in client.chat(conversation_id, "hello there")]
            return kind(events[-1])

        # Some are refused SERVER_BUSY at first (one open at a time, none waiting): the
        # client sends them again after the RetryInfo delay, and every one is answered.
        assert await asyncio.gather(*(chat(c.id) for c in conversations)) == ["completed"] * 20
