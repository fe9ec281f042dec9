"""How a run's owner writes its events: model text is buffered for `run_delta_flush_ms`
and stored as one `Delta` per flush; any other event first flushes the text held, in the
same batch, so the log's order is the order things happened. Every stored event is also
applied to the run's transcript, which stays the one picture of the run's state, and the
messages a batch adds to the run's conversation go with it (mirror.py)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from server.agents.runs.events import Delta, RunEvent
from server.agents.runs.log import EventLog
from server.agents.runs.mirror import TranscriptMirror
from server.agents.runs.transcript import Transcript


class EventWriter:
    def __init__(
        self,
        log: EventLog,
        run_id: uuid.UUID,
        lease_token: int,
        flush_seconds: float,
        transcript: Transcript,
        mirror: TranscriptMirror | None = None,
    ) -> None:
        self._log = log
        self._mirror = mirror
        self._run_id = run_id
        self._token = lease_token
        self._flush_seconds = flush_seconds
        self.transcript = transcript
        self._text = ""
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    def delta(self, text: str) -> None:
        """Model text: stored within `flush_seconds`, or with the next event."""
        if not text:
            return
        self._text += text
        if self._flush_seconds <= 0:
            self._start_timer(0.0)
        elif self._timer is None or self._timer.done():
            self._start_timer(self._flush_seconds)

    async def emit(self, *events: RunEvent) -> None:
        """Stores the text held and `events`, in order, in one batch (LeaseLost if the
        lease is gone)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        async with self._lock:
            batch: list[RunEvent] = []
            if self._text:
                batch.append(Delta(self._text))
                self._text = ""
            batch.extend(events)
            if not batch:
                return
            mirror = self._mirror
            messages = mirror.messages(self.transcript, batch) if mirror is not None else []
            stored = await self._log.append(self._run_id, self._token, batch, transcript=messages)
            for item in stored:
                self.transcript.apply(item.event, item.seq)
            if stored:
                self.transcript.last_seq = stored[-1].seq

    async def flush(self) -> None:
        await self.emit()

    async def close(self) -> None:
        """Stops the flush timer (text still held is dropped: flush first to keep it)."""
        timer = self._timer
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await timer

    def _start_timer(self, delay: float) -> None:
        if self._timer is not None and not self._timer.done():
            return
        self._timer = asyncio.get_running_loop().create_task(
            self._flush_later(delay), name=f"run-deltas:{self._run_id}"
        )

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self.emit()
        except Exception as failure:
            # Reported by the owner's next emit (LeaseLost stops the run there).
            self._failure = failure
