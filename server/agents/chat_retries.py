"""Chat with a request id: a retry replays the answer instead of asking the model again.

The first call claims the id and, once both messages are stored, records them as its
result. A retry then gets `ChatStarted` with the same message ids and the answer from the
messages table: a finished answer at once, one still being written as it is saved (about
once per save interval, from whichever server writes it), then how it ended: usage and
`ChatCompleted`, or the error it failed with. Artifacts extracted from the answer are not
sent again (the message lists their ids).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.access import chat_target
from server.agents.chat import Chats, ChatTurn
from server.agents.compaction_store import summary_before
from server.agents.generation import GenerationParams
from server.agents.rows import message_view
from server.agents.views import ChatCompleted, ChatEvent, ChatStarted, ChatSummary, ChatUsage
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import Aborted, ForgeError, NotFound, Unavailable, error_from_document
from server.core.idempotency import Claimed, Done, IdempotencyStore, RequestKey
from server.db.agent_models import MessageRow
from server.db.engine import reading
from server.llm import TextDelta, Usage


@dataclass(frozen=True, slots=True)
class ChatRetry:
    """The request id of a Chat call, and what the first call with it must match."""

    key: RequestKey
    fingerprint: bytes
    deadline: float | None


def _answer_lost() -> NotFound:
    return NotFound("the answer of this request no longer exists", "MESSAGE_NOT_FOUND")


def _ended_without_finishing(row: MessageRow) -> ForgeError:
    if row.status == "failed" and row.error:
        return error_from_document(row.error)
    if row.status == "interrupted":
        return Unavailable(
            "the server writing this answer stopped; the text saved until then was sent",
            "ANSWER_INTERRUPTED",
        )
    return Aborted(
        "the first call with this request id was cancelled before its answer finished",
        "ANSWER_CANCELLED",
    )


class AnswerReplay:
    """A stored (or still growing) answer told again, with `ChatTurn`'s interface."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        user_message_id: uuid.UUID,
        assistant_message_id: uuid.UUID,
        poll_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._user_message_id = user_message_id
        self._assistant_message_id = assistant_message_id
        self._poll_seconds = poll_seconds

    def call_ended(self) -> None:
        return None

    async def events(self) -> AsyncGenerator[ChatEvent, None]:
        row = await self._read()
        async with reading(self._sessions) as db:
            summary = await summary_before(db, self._user_message_id)
        if summary is not None:  # the first call's stream began with it too
            yield ChatSummary(message_view(summary))
        yield ChatStarted(self._user_message_id, self._assistant_message_id, row.model)
        sent = 0
        while True:
            if len(row.content) > sent:
                yield TextDelta(row.content[sent:])
                sent = len(row.content)
            if row.status != "in_progress":
                break
            await asyncio.sleep(self._poll_seconds)
            row = await self._read()
        if row.status != "complete":
            raise _ended_without_finishing(row)
        yield ChatUsage(Usage(row.input_tokens, row.output_tokens))
        yield ChatCompleted(row.finish_reason or "stop")  # type: ignore[arg-type]

    async def _read(self) -> MessageRow:
        async with reading(self._sessions) as db:
            row = await db.get(MessageRow, self._assistant_message_id)
        if row is None:
            raise _answer_lost()
        return row


class ChatRetries:
    def __init__(self, chats: Chats, requests: IdempotencyStore, poll_seconds: float) -> None:
        self._chats = chats
        self._requests = requests
        self._sessions = chats.sessions
        self._poll_seconds = poll_seconds

    async def open(
        self,
        caller: Caller,
        conversation_id: str,
        content: str,
        model: str,
        params: GenerationParams,
        retry: ChatRetry,
    ) -> ChatTurn | AnswerReplay:
        # Claiming, opening and recording run to their end even when the caller goes:
        # an answer opened for a gone caller is settled as cancelled, and a retry finds it.
        opening = self._chats.tasks.spawn(
            self._open(caller, conversation_id, content, model, params, retry),
            name="open-retryable",
            log_failure=False,
        )
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_abandon_if_opened)
            raise

    async def _open(
        self,
        caller: Caller,
        conversation_id: str,
        content: str,
        model: str,
        params: GenerationParams,
        retry: ChatRetry,
    ) -> ChatTurn | AnswerReplay:
        outcome = await self._requests.claim(retry.key, retry.fingerprint, retry.deadline)
        if isinstance(outcome, Done):
            return await self._replay(caller, conversation_id, outcome)
        try:
            turn = await self._chats.open(caller, conversation_id, content, model, params)
        except BaseException:
            await self._requests.release(retry.key, outcome)
            raise
        await self._record(retry.key, outcome, turn)
        return turn

    async def _record(self, key: RequestKey, claim: Claimed, turn: ChatTurn) -> None:
        started = turn.started
        resource = f"{started.user_message_id}/{started.assistant_message_id}"
        await self._requests.finish(key, claim, resource=resource)

    async def _replay(self, caller: Caller, conversation_id: str, done: Done) -> AnswerReplay:
        await chat_target(self._sessions, caller, conversation_id, ProjectRole.VIEWER)
        user_message_id, _, assistant_message_id = (done.resource or "").partition("/")
        if not assistant_message_id:
            raise _answer_lost()
        return AnswerReplay(
            self._sessions,
            uuid.UUID(user_message_id),
            uuid.UUID(assistant_message_id),
            self._poll_seconds,
        )


def _abandon_if_opened(opening: asyncio.Task[ChatTurn | AnswerReplay]) -> None:
    if opening.cancelled() or opening.exception() is not None:
        return
    opened = opening.result()
    if isinstance(opened, ChatTurn):
        opened.abandon()
