"""Compaction of a run's transcript, before a model turn: when the history the model would
be sent (the goal, the newest summary, the turns after it) outgrows `history_token_budget`,
the oldest whole turns after the summary are summarised by the run's model
(server/llm/summary.py), with the summary before them, into a `TranscriptSummarized` event.
Stored in the run's log like any event, it survives a takeover: the transcript rebuilt from
the log puts the summary in place of the events up to its `through_seq`
(transcript.py). Its tokens count in the run's usage and budget and are charged to the user.

The goal and the newest complete turn are always sent; room is kept in the budget for the
summary (a quarter of the budget at most). Should summarising fail, this turn is asked with
the older turns left out (nothing is recorded), and the next turn tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from server.agents.runs.events import RunEvent, TranscriptSummarized
from server.agents.runs.transcript import Transcript
from server.agents.views import AgentView
from server.config import Settings
from server.core.errors import ForgeError
from server.llm import ChatMessage, ChatRequest, ResolvedModel, ToolSpec, Usage, estimate_tokens
from server.llm.history import estimate_message_tokens
from server.llm.summary import summarise, with_summary

log = logging.getLogger(__name__)


def _tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(estimate_message_tokens(message) for message in messages)


async def compact(
    model: ResolvedModel,
    transcript: Transcript,
    agent: AgentView,
    settings: Settings,
    deadline: float,
    emit: Callable[[RunEvent], Awaitable[None]],
    charge: Callable[[Usage], Awaitable[None]],
) -> int | None:
    """Records a summary (and charges it) when the transcript outgrew the budget. Returns
    the seq through which this turn's request leaves events out without a summary (when
    summarising failed), else None."""
    budget, system = settings.history_token_budget, agent.system_prompt
    current = with_summary(system, transcript.summary)
    if estimate_tokens(current) + _tokens(transcript.messages()) <= budget:
        return None
    reserve = min(settings.summary_max_output_tokens, budget // 4)  # room for the summary
    goal = ChatMessage.user(transcript.goal)
    keep = budget - reserve - estimate_tokens(system) - estimate_message_tokens(goal)
    planned = transcript.compaction(keep)
    if planned is None:
        return None
    through, covered = planned
    try:
        async with asyncio.timeout_at(deadline):
            summary = await summarise(
                model.provider,
                model.name,
                transcript.summary,
                covered,
                max_tokens=settings.summary_max_output_tokens,
                input_budget_tokens=budget,
                context=f"The task the agent works on: {transcript.goal}",
            )
    except (ForgeError, TimeoutError) as error:
        log.warning(
            "could not summarise a run's older steps; left out of this turn",
            extra={"model": model.id, "reason": getattr(error, "reason", "TIMEOUT")},
        )
        return through
    usage = summary.usage
    await emit(TranscriptSummarized(summary.text, through, usage.input_tokens, usage.output_tokens))
    await charge(usage)
    return None


def run_request(
    transcript: Transcript,
    agent: AgentView,
    model: ResolvedModel,
    tools: Sequence[ToolSpec],
    left_out_through: int | None = None,
) -> ChatRequest:
    """The request of the run's next model turn, with the agent profile's parameters."""
    return ChatRequest(
        model=model.name,
        messages=transcript.messages(left_out_through),
        system=with_summary(agent.system_prompt, transcript.summary),
        tools=tools,
        max_tokens=agent.max_output_tokens or None,
        temperature=agent.temperature,
        top_p=agent.top_p,
        stop_sequences=agent.stop_sequences,
    )
