"""The durable event log of runs: the truth a run's state, its watchers and its resumption
are built from.

Only the lease holder appends. One transaction per batch: reserve the seqs and prove the
lease in one UPDATE (which also applies the batch's projection to the row), insert the
events, and NOTIFY `forge_run_events` with '<run_id>:<last_seq>' (delivered at commit, to
every process listening). A writer whose lease was taken over gets LeaseLost and writes
nothing (fencing), so a run never has two writers. The messages of the run's transcript
(mirror.py) are written in the same transaction as the events they mirror.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.runs import store
from server.agents.runs.convert import EventCodec
from server.agents.runs.events import RunEvent, StoredEvent, ToolCalled
from server.agents.runs.mirror import TranscriptMessage
from server.agents.runs.projection import Projection, column_values, project
from server.core.metrics import run_ended
from server.db.engine import reading

EVENTS_CHANNEL = "forge_run_events"
READ_LIMIT = 500


class LeaseLost(Exception):
    """The writer no longer holds the run's lease: stop at once."""

    def __init__(self, run_id: uuid.UUID, lease_token: int) -> None:
        super().__init__(f"run {run_id}: lease {lease_token} is no longer held (or it ended)")
        self.run_id = run_id
        self.lease_token = lease_token


def event_notice(run_id: uuid.UUID, last_seq: int) -> str:
    return f"{run_id}:{last_seq}"


class EventLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], codec: EventCodec) -> None:
        self._sessions = sessions
        self._codec = codec

    async def append(
        self,
        run_id: uuid.UUID,
        lease_token: int,
        events: Sequence[RunEvent],
        *,
        transcript: Sequence[TranscriptMessage] = (),
    ) -> list[StoredEvent]:
        """Appends `events` with the next seqs, as the holder of lease `lease_token`, and
        adds the `transcript` messages that mirror them to the run's conversation (none
        when it has none); LeaseLost (nothing written) if that lease is no longer held or
        the run has ended."""
        if not events:
            return []
        codec = self._codec
        payloads = [codec.encode(event) for event in events]
        projection = project(events)
        count = len(events)
        async with self._sessions() as db, db.begin():
            conversation_id = None
            if transcript:
                # Counted (and locked) before the fenced UPDATE locks the run: the lock order
                # of deleting a conversation. Its messages are inserted once the lease held.
                conversation_id = await store.count_transcript(db, run_id, len(transcript))
            if projection.waiting_for:
                projection = await self._with_pending_call(db, run_id, projection)
            runs = store.RUNS.c
            bumped = await db.execute(
                update(store.RUNS)
                .where(
                    runs.id == run_id,
                    runs.lease_token == lease_token,
                    runs.status.not_in(store.ENDED),
                )
                .values(last_seq=runs.last_seq + count, **column_values(projection, runs))
                .returning(runs.last_seq, func.now())
            )
            found = bumped.first()
            if found is None:
                raise LeaseLost(run_id, lease_token)
            last_seq, now = int(found[0]), found[1]
            first = last_seq - count + 1
            await store.insert_events(
                db,
                [
                    {
                        "run_id": run_id,
                        "seq": first + index,
                        "kind": codec.kind(event),
                        "payload": payload,
                        "internal": _internal(event),
                    }
                    for index, (event, payload) in enumerate(zip(events, payloads, strict=True))
                ],
            )
            if conversation_id is not None:
                messages = [message.columns() for message in transcript]
                await store.insert_messages(db, conversation_id, messages)
            await db.execute(select(func.pg_notify(EVENTS_CHANNEL, event_notice(run_id, last_seq))))
        if projection.ended and projection.status is not None:
            run_ended(projection.status.value)  # once per run: the fenced UPDATE ends it
        # run_events.create_time defaults to now(), the transaction's start: `now` above.
        return [
            StoredEvent(seq=first + index, event=event, payload=payload, create_time=now)
            for index, (event, payload) in enumerate(zip(events, payloads, strict=True))
        ]

    async def read(
        self, run_id: uuid.UUID, after_seq: int, limit: int = READ_LIMIT
    ) -> list[StoredEvent]:
        """The run's stored events after `after_seq`, in order, at most `limit`."""
        async with reading(self._sessions) as db:
            rows = await store.read_events(db, run_id, after_seq, limit)
        return [self._stored(seq, payload, internal, time) for seq, payload, internal, time in rows]

    def _stored(
        self, seq: int, payload: bytes, internal: dict[str, Any] | None, create_time: Any
    ) -> StoredEvent:
        event = self._codec.decode(payload)
        if internal and isinstance(event, ToolCalled) and internal.get("signature"):
            event = dataclasses.replace(event, signature=str(internal["signature"]))
        return StoredEvent(seq=seq, event=event, payload=payload, create_time=create_time)

    async def _with_pending_call(
        self, db: AsyncSession, run_id: uuid.UUID, projection: Projection
    ) -> Projection:
        """The projection of a batch that makes the run wait for a call stored by an earlier
        batch: the call is looked up in the log."""
        for payload in await store.tool_call_payloads(db, run_id):
            event = self._codec.decode(payload)
            if isinstance(event, ToolCalled) and event.id == projection.waiting_for:
                call = {"id": event.id, "name": event.name, "arguments": event.arguments}
                return dataclasses.replace(projection, pending_tool_call=call, waiting_for="")
        call = {"id": projection.waiting_for, "name": "", "arguments": ""}
        return dataclasses.replace(projection, pending_tool_call=call, waiting_for="")


def _internal(event: RunEvent) -> Any:
    if isinstance(event, ToolCalled) and event.signature:
        return {"signature": event.signature}
    return null()  # SQL NULL (None would be stored as JSON null)
