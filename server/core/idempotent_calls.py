"""Request ids applied to calls: every RPC whose request has a `request_id` field.

Unary calls store their response; a retry gets it back. Server streams store the events
they sent (up to `MAX_RECORDED_BYTES`); a retry gets them again, ending the way the first
call ended. A stream that was cancelled, or failed before sending anything, did nothing
a retry must not repeat: it gives its id back. A servicer with a better replay of its own
(Chat replays the stored answer, and attaches to one still being written) is left alone.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from server.core.context import current_call
from server.core.errors import FailedPrecondition, ForgeError, error_from_document
from server.core.idempotency import (
    REQUEST_ID_FIELD,
    Claimed,
    Done,
    IdempotencyStore,
    RequestKey,
    fingerprint_of,
    request_id_of,
)
from server.core.tasks import TaskSupervisor

log = logging.getLogger(__name__)

MAX_RECORDED_BYTES = 16 * 1024 * 1024
PURGE_INTERVAL_SECONDS = 3600.0
_FRAME = struct.Struct(">I")

Context = Any  # grpc.aio.ServicerContext (generic only in the stubs)


def call_deadline(context: Context) -> float | None:
    """The call's deadline as a `time.monotonic()` value, if it has one."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def request_key(method: str, request: Message) -> RequestKey | None:
    call = current_call()
    request_id = request_id_of(request, call.metadata)
    if request_id is None:
        return None
    return RequestKey(call.require_caller().user_id, method, request_id)


def _frames(events: Iterable[bytes]) -> bytes:
    return b"".join(_FRAME.pack(len(event)) + event for event in events)


def _unframe(data: bytes) -> Iterator[bytes]:
    offset = 0
    while offset < len(data):
        (size,) = _FRAME.unpack_from(data, offset)
        offset += _FRAME.size
        yield data[offset : offset + size]
        offset += size


def _not_replayable() -> FailedPrecondition:
    return FailedPrecondition(
        "the first call with this request id sent more than can be replayed; use a new id "
        "to run the request again",
        "RESULT_NOT_REPLAYABLE",
    )


class IdempotentCalls:
    """Given to the call interceptor, which runs the covered methods through it."""

    def __init__(self, store: IdempotencyStore, response_types: dict[str, type[Message]]) -> None:
        self.store = store
        self._response_types = response_types
        self._tasks = TaskSupervisor("idempotent-calls")

    @classmethod
    def of(
        cls,
        store: IdempotencyStore,
        services: Iterable[ServiceDescriptor],
        left_to_servicers: Iterable[str] = (),
    ) -> IdempotentCalls:
        """Covers every method of `services` with a `request_id` field, except the method
        paths in `left_to_servicers` and client streams."""
        skipped = frozenset(left_to_servicers)
        types: dict[str, type[Message]] = {}
        for service in services:
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                if (
                    REQUEST_ID_FIELD in method.input_type.fields_by_name
                    and not method.client_streaming
                    and path not in skipped
                ):
                    types[path] = message_factory.GetMessageClass(method.output_type)
        return cls(store, types)

    def covers(self, method: str) -> bool:
        return method in self._response_types

    async def start(self) -> None:
        self._tasks.every("purge", PURGE_INTERVAL_SECONDS, self.store.purge_expired)

    async def stop(self) -> None:
        await self._tasks.stop()

    # --- unary ----------------------------------------------------------------------------

    async def unary(
        self, method: str, request: Message, context: Context, run: Callable[[], Awaitable[Any]]
    ) -> Any:
        key = request_key(method, request)
        if key is None:
            return await run()
        outcome = await self.store.claim(key, fingerprint_of(request), call_deadline(context))
        if isinstance(outcome, Done):
            return self._replayed_response(method, outcome)
        # The work runs to its end, and its result is kept, even when the caller stops
        # waiting: the retry that a timeout prompts then gets this result.
        return await self._tasks.shielded(self._run(key, outcome, run), name="unary")

    async def _run(self, key: RequestKey, claim: Claimed, run: Callable[[], Awaitable[Any]]) -> Any:
        try:
            response = await run()
        except BaseException:
            await self._release(key, claim)
            raise
        try:
            await self.store.finish(key, claim, response=response.SerializeToString())
        except Exception:
            # The work is done and the caller gets its result; a retry after the lease
            # would do it again.
            log.warning("could not store a call's result for retries", exc_info=True)
        return response

    def _replayed_response(self, method: str, done: Done) -> Any:
        if done.error is not None:
            raise error_from_document(done.error)
        if done.response is None:
            raise _not_replayable()
        return self._response_types[method].FromString(done.response)

    # --- server streams -------------------------------------------------------------------

    async def stream(
        self, method: str, request: Message, context: Context, events: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        key = request_key(method, request)
        if key is None:
            async for event in events:
                yield event
            return
        outcome = await self.store.claim(key, fingerprint_of(request), call_deadline(context))
        if isinstance(outcome, Done):
            for event in self._replayed_events(method, outcome):
                yield event
            return
        recorded: list[bytes] = []
        size = 0
        try:
            async for event in events:
                if size <= MAX_RECORDED_BYTES:
                    data = event.SerializeToString()
                    size += len(data)
                    recorded.append(data)
                yield event
        except ForgeError as error:
            if recorded:
                await self._finish_stream(key, outcome, recorded, size, error)
            else:
                await self._release(key, outcome)
            raise
        except BaseException:
            self._tasks.spawn(self.store.release(key, outcome), name="release")
            raise
        await self._finish_stream(key, outcome, recorded, size, None)

    async def _finish_stream(
        self,
        key: RequestKey,
        claim: Claimed,
        recorded: list[bytes],
        size: int,
        error: ForgeError | None,
    ) -> None:
        too_large = size > MAX_RECORDED_BYTES
        finish = self.store.finish(
            key,
            claim,
            response=None if too_large else _frames(recorded),
            error=_not_replayable() if too_large else error,
        )
        try:
            await self._tasks.shielded(finish, name="finish")
        except Exception:
            log.warning("could not store a stream's events for retries", exc_info=True)

    def _replayed_events(self, method: str, done: Done) -> Iterator[Any]:
        event_type = self._response_types[method]
        if done.response is None and done.error is None:
            raise _not_replayable()
        for data in _unframe(done.response or b""):
            yield event_type.FromString(data)
        if done.error is not None:
            raise error_from_document(done.error)

    async def _release(self, key: RequestKey, claim: Claimed) -> None:
        try:
            await asyncio.shield(self._tasks.spawn(self.store.release(key, claim), name="release"))
        except Exception:
            log.warning("could not give a request id back", exc_info=True)
