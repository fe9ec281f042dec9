"""Compaction of a chat's history: when the history (from the conversation's newest summary
on) no longer fits `history_token_budget`, the oldest whole turns, with the summary before
them, are summarised by the model that answers (server/llm/summary.py) into one stored
message of role `summary` instead of being silently left out.

The new summary covers the messages up to `summarized_through_id`; later chats load their
history from the newest summary on (store.recent_turns). It is stored with the turn it was
written for, in one transaction (compaction_store.py), so it sorts before the new user
message and never exists without its turn; its tokens are charged to the user like an
answer's. Room is kept in the budget for the summary itself (a quarter of the budget at
most). Should summarising fail (provider error, empty answer), the answer goes on with the
older turns left out, as before compaction existed, and a later chat tries again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import compaction_store, store
from server.agents.compaction_store import NewSummary
from server.agents.rows import message_view
from server.agents.store import StoredHistory
from server.agents.usage import UsageLedger
from server.agents.views import MessageView
from server.core.errors import ForgeError
from server.core.ids import new_id
from server.llm import ChatMessage, ResolvedModel, Role, Usage, estimate_tokens, trim_history
from server.llm.history import estimate_message_tokens
from server.llm.summary import summarise, with_summary

log = logging.getLogger(__name__)

NO_USAGE = Usage()
NO_HISTORY = StoredHistory(summary_id=None, summary="", turns=[])


@dataclass(frozen=True, slots=True)
class PlannedHistory:
    """What the answer's request carries, and the summary to store with its turn."""

    system: str
    """The system prompt, with the summary that stands for the older history."""
    messages: list[ChatMessage]
    estimated_tokens: int
    summary: NewSummary | None = None
    summary_usage: Usage = NO_USAGE


class ChatCompaction:
    def __init__(self, budget: int, summary_max_output_tokens: int) -> None:
        self._budget = budget
        self._summary_tokens = summary_max_output_tokens

    async def plan(
        self, model: ResolvedModel, system: str, stored: StoredHistory, content: str
    ) -> PlannedHistory:
        """The history of an answer to `content`: as stored when it fits the budget, else
        with its oldest turns summarised (or, should that fail, left out)."""
        history = [ChatMessage(Role(role), text) for _, role, text in stored.turns]
        history.append(ChatMessage.user(content))
        current = with_summary(system, stored.summary)
        trimmed = trim_history(current, history, self._budget)
        if not trimmed.dropped:
            return PlannedHistory(current, trimmed.messages, trimmed.estimated_tokens)
        reserve = min(self._summary_tokens, self._budget // 4)  # room for the summary
        room = trim_history(system, history, self._budget - reserve)
        covered = max(room.dropped, trimmed.dropped)
        try:
            summary = await summarise(
                model.provider,
                model.name,
                stored.summary,
                history[:covered],
                max_tokens=self._summary_tokens,
                input_budget_tokens=self._budget,
            )
        except ForgeError as error:
            log.warning(
                "could not summarise a conversation's older messages; left out of this answer",
                extra={"model": model.id, "reason": error.reason},
            )
            return PlannedHistory(current, trimmed.messages, trimmed.estimated_tokens)
        kept = history[covered:]
        system = with_summary(system, summary.text)
        return PlannedHistory(
            system=system,
            messages=kept,
            estimated_tokens=estimate_tokens(system) + _tokens(kept),
            summary=NewSummary(
                id=new_id(),
                content=summary.text,
                model=model.id,
                input_tokens=summary.usage.input_tokens,
                output_tokens=summary.usage.output_tokens,
                summarized_through_id=stored.turns[covered - 1][0],
                summarized_message_count=covered + (1 if stored.summary_id else 0),
            ),
            summary_usage=summary.usage,
        )


def _tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(estimate_message_tokens(message) for message in messages)


async def add_turn(
    sessions: async_sessionmaker[AsyncSession],
    ledger: UsageLedger,
    planned: PlannedHistory,
    conversation_id: uuid.UUID,
    *,
    user_message_id: uuid.UUID,
    assistant_message_id: uuid.UUID,
    user_id: uuid.UUID,
    content: str,
    model: str,
    title: str,
) -> MessageView | None:
    """Stores the turn (store.add_turn), with the planned summary before it if there is
    one; returns the stored summary."""
    if planned.summary is None:
        await store.add_turn(
            sessions,
            conversation_id,
            user_message_id=user_message_id,
            assistant_message_id=assistant_message_id,
            user_id=user_id,
            content=content,
            model=model,
            title=title,
        )
        return None
    charge = ledger.charge(user_id, planned.summary.model, planned.summary_usage)
    row = await compaction_store.add_turn_after_summary(
        sessions,
        conversation_id,
        planned.summary,
        charge,
        user_message_id=user_message_id,
        assistant_message_id=assistant_message_id,
        user_id=user_id,
        content=content,
        model=model,
        title=title,
    )
    return message_view(row)
