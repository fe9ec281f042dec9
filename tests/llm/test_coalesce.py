"""A provider stream read ahead of a busy consumer: text deltas merge, nothing else does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

import anyio
import pytest

from server.core.errors import Unavailable
from server.llm import Finish, ProviderEvent, TextDelta, ToolCallRequest, Usage
from server.llm.coalesce import coalesced

DEADLINE = 10.0
FINISH = Finish("stop", Usage(1, 3))


async def collect(stream: AsyncGenerator[ProviderEvent, None]) -> list[ProviderEvent]:
    return [event async for event in stream]


async def test_deltas_the_consumer_was_not_ready_for_go_out_as_one() -> None:
    first_taken = asyncio.Event()
    all_read = asyncio.Event()

    async def provider() -> AsyncGenerator[ProviderEvent, None]:
        yield TextDelta("a ")
        await asyncio.wait_for(first_taken.wait(), DEADLINE)
        for word in ("b ", "c "):
            yield TextDelta(word)
        yield ToolCallRequest("call-1", "bash", "{}")
        yield TextDelta("d ")
        yield TextDelta("e ")
        yield FINISH
        all_read.set()

    stream = coalesced(provider())
    # Nothing waited for company: the first delta went out alone.
    assert await anext(stream) == TextDelta("a ")
    first_taken.set()
    # The consumer is busy (as while its previous event is being sent); the producer reads on.
    await asyncio.wait_for(all_read.wait(), DEADLINE)
    assert await collect(stream) == [
        TextDelta("b c "),
        ToolCallRequest("call-1", "bash", "{}"),
        TextDelta("d e "),
        FINISH,
    ]


async def test_a_consumer_that_keeps_up_gets_every_delta_on_its_own() -> None:
    received = asyncio.Event()

    async def provider() -> AsyncGenerator[ProviderEvent, None]:
        for word in ("a ", "b ", "c ", "d "):
            yield TextDelta(word)
            await asyncio.wait_for(received.wait(), DEADLINE)  # the next one comes later
            received.clear()
        yield FINISH

    events = []
    async for event in coalesced(provider()):
        events.append(event)
        received.set()
    assert events == [TextDelta("a "), TextDelta("b "), TextDelta("c "), TextDelta("d "), FINISH]


async def test_a_failure_comes_after_the_events_before_it() -> None:
    async def provider() -> AsyncGenerator[ProviderEvent, None]:
        yield TextDelta("a ")
        yield TextDelta("b ")
        raise Unavailable("the model went away", "PROVIDER_UNAVAILABLE")

    seen: list[ProviderEvent] = []

    async def read() -> None:
        async for event in coalesced(provider()):
            seen.append(event)

    with pytest.raises(Unavailable, match="went away"):
        await read()
    assert "".join(event.text for event in seen if isinstance(event, TextDelta)) == "a b "


async def test_closing_early_closes_the_provider_stream_inside_its_cancel_scope() -> None:
    """SDK streams hold anyio cancel scopes across their events: the stream is read, and
    closed, in one task, even when the consumer stops halfway (an anyio scope left in
    another task raises)."""
    closed = asyncio.Event()
    started = asyncio.Event()

    async def provider() -> AsyncGenerator[ProviderEvent, None]:
        try:
            with anyio.CancelScope():
                yield TextDelta("a ")
                started.set()
                await asyncio.sleep(DEADLINE * 10)  # a model that takes its time
                yield TextDelta("never ")
        finally:
            closed.set()

    stream = coalesced(provider())
    assert await anext(stream) == TextDelta("a ")
    await asyncio.wait_for(started.wait(), DEADLINE)
    await stream.aclose()
    await asyncio.wait_for(closed.wait(), DEADLINE)


async def test_a_cancelled_consumer_cancels_the_provider_stream() -> None:
    closed = asyncio.Event()
    waiting = asyncio.Event()

    async def provider() -> AsyncGenerator[ProviderEvent, None]:
        try:
            waiting.set()
            await asyncio.sleep(DEADLINE * 10)
            yield TextDelta("never ")
        finally:
            closed.set()

    async def consume() -> list[ProviderEvent]:
        return await collect(coalesced(provider()))

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(waiting.wait(), DEADLINE)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await asyncio.wait_for(closed.wait(), DEADLINE)


async def test_a_stop_from_outside_drops_what_was_not_taken_and_closes_the_provider() -> None:
    closed = asyncio.Event()
    read_ahead = asyncio.Event()
    stops: list[Callable[[BaseException], None]] = []
    unwatched = asyncio.Event()

    def watch(stop: Callable[[BaseException], None]) -> Callable[[], None]:
        stops.append(stop)
        return unwatched.set

    first_taken = asyncio.Event()

    async def provider() -> AsyncGenerator[ProviderEvent, None]:
        try:
            with anyio.CancelScope():
                yield TextDelta("a ")
                await asyncio.wait_for(first_taken.wait(), DEADLINE)
                yield TextDelta("b ")
                read_ahead.set()
                await asyncio.sleep(DEADLINE * 10)  # a model that takes its time
                yield TextDelta("never ")
        finally:
            closed.set()

    stream = coalesced(provider(), stops=watch)
    assert await anext(stream) == TextDelta("a ")
    first_taken.set()
    await asyncio.wait_for(read_ahead.wait(), DEADLINE)  # "b " waits to be taken
    stops[0](Unavailable("stopped", "ANSWER_CANCELLED"))
    with pytest.raises(Unavailable):
        await anext(stream)
    await asyncio.wait_for(closed.wait(), DEADLINE)
    assert unwatched.is_set()


async def test_a_stop_after_the_stream_ended_changes_nothing() -> None:
    stops: list[Callable[[BaseException], None]] = []

    def watch(stop: Callable[[BaseException], None]) -> Callable[[], None]:
        stops.append(stop)
        return lambda: None

    async def provider() -> AsyncGenerator[ProviderEvent, None]:
        yield TextDelta("a ")
        yield FINISH

    stream = coalesced(provider(), stops=watch)
    first = await anext(stream)
    await asyncio.sleep(0)  # the producer reads to the end
    stops[0](Unavailable("too late", "ANSWER_CANCELLED"))
    assert [first, *(await collect(stream))] == [TextDelta("a "), FINISH]
