"""Saving answers while they stream, so a crash loses at most the last moments of one.

One saver per process. Every tick (`chat_save_interval_seconds`) it marks each live answer
`due`; the answer's stream, at its next delta, hands its text so far over (`post`: one
attribute test per delta on the hot path, one hand-over per tick); the next tick writes
every answer handed over in one statement. Answers that produced nothing new are only
marked alive, a third of `chat_orphan_after_seconds` after their last write, so that the
sweeper of any server (sweeper.py) never takes a live answer for an orphan.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import answer_store
from server.core.tasks import TaskSupervisor


class LiveAnswer:
    """An answer being streamed by this process."""

    __slots__ = ("due", "input_tokens", "message_id", "text", "written_at")

    def __init__(self, message_id: uuid.UUID, input_tokens: int, now: float) -> None:
        self.message_id = message_id
        self.input_tokens = input_tokens
        self.due = False
        """Set by the saver: the stream should hand its text over at its next delta."""
        self.text: str | None = None
        self.written_at = now

    def post(self, text: str) -> None:
        self.text = text
        self.due = False


class AnswerSaver:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        save_interval: float,
        orphan_after: float,
    ) -> None:
        self._sessions = sessions
        self._alive_every = orphan_after / 3
        self._interval = min(save_interval, self._alive_every)
        self._live: dict[uuid.UUID, LiveAnswer] = {}
        self._tasks = TaskSupervisor("answer-saver")

    def track(self, message_id: uuid.UUID, input_tokens: int) -> LiveAnswer:
        """An answer stored IN_PROGRESS just now starts streaming."""
        live = LiveAnswer(message_id, input_tokens, time.monotonic())
        self._live[message_id] = live
        return live

    def forget(self, message_id: uuid.UUID) -> None:
        """The answer is being settled: no more saves."""
        self._live.pop(message_id, None)

    async def start(self) -> None:
        self._tasks.every("save", self._interval, self.save)

    async def stop(self) -> None:
        await self._tasks.stop()

    async def save(self) -> None:
        """Writes the text handed over since the last tick, marks long-unwritten answers
        alive, and asks every live answer for its text again."""
        now = time.monotonic()
        stale = now - self._alive_every
        written: list[LiveAnswer] = []
        contents: list[str | None] = []
        for live in self._live.values():
            text = live.text
            if text is not None:
                live.text = None
                written.append(live)
                contents.append(text.replace("\x00", "") if "\x00" in text else text)
            elif live.written_at <= stale:
                written.append(live)
                contents.append(None)
            live.due = True
        if not written:
            return
        await answer_store.save_answers(
            self._sessions,
            [live.message_id for live in written],
            contents,
            [live.input_tokens for live in written],
        )
        for live in written:
            live.written_at = now
