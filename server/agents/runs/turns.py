"""One model turn of a run (the provider's stream consumed, its text handed on as it
arrives), its usage charge, and the rules the loop applies around tool calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.charges import UsageCharge, add_usage
from server.agents.runs.events import ApprovalMode, ToolCalled
from server.agents.runs.tools import ToolRegistry
from server.core.errors import DeadlineExceeded, ForgeError
from server.core.metrics import answer_meter
from server.llm import (
    ChatRequest,
    Finish,
    ProviderStreamError,
    ResolvedModel,
    TextDelta,
    ToolCallRequest,
    Usage,
)

TIME_LIMIT_EXCEEDED = "RUN_TIME_LIMIT_EXCEEDED"
UNFINISHED_TURN = "RUN_MODEL_TURN_UNFINISHED"


def time_up(limit: timedelta) -> DeadlineExceeded:
    seconds = limit.total_seconds()
    return DeadlineExceeded(
        f"the run reached its time limit of {seconds:g} seconds",
        TIME_LIMIT_EXCEEDED,
        metadata={"time_limit_seconds": f"{seconds:g}"},
    )


def needs_approval(mode: ApprovalMode, tools: ToolRegistry, name: str, args: Any) -> bool:
    if mode is ApprovalMode.ASK_BEFORE_BASH:
        return name == "bash"
    if mode is ApprovalMode.ASK_BEFORE_WRITES:
        return tools.writes(name, args)
    return False


async def ask_model(
    model: ResolvedModel,
    request: ChatRequest,
    on_text: Callable[[str], None],
    deadline: float,
    step: int,
    time_limit: timedelta,
) -> tuple[list[ToolCalled], Usage]:
    """Streams one answer: text to `on_text` as it arrives; the tool calls it asked for
    and its usage at the end. Stops at `deadline` (event-loop time: the run's time
    limit). A provider failure raises its ForgeError."""
    calls: list[ToolCalled] = []
    finish: Finish | None = None
    meter = answer_meter("run", model.id)
    try:
        async with asyncio.timeout_at(deadline) as scope:
            async with aclosing(model.provider.stream(request)) as stream:
                async for event in stream:
                    if type(event) is TextDelta:
                        on_text(event.text)
                        if meter is not None:
                            meter.text(event.text)
                    elif type(event) is ToolCallRequest:
                        # Ids must be unique within the turn; a provider may send none.
                        call_id = event.id or f"call-{step}-{len(calls) + 1}"
                        args, signature = event.arguments_json, event.signature
                        calls.append(ToolCalled(call_id, event.name, args, signature))
                    elif type(event) is Finish:
                        finish = event
    except ProviderStreamError as failure:
        raise failure.error from None
    except TimeoutError:
        if scope.expired():
            raise time_up(time_limit) from None
        raise
    if finish is None:
        raise ForgeError("the model ended its turn without finishing it", UNFINISHED_TURN)
    return calls, finish.usage


async def charge_turn(sessions: async_sessionmaker[AsyncSession], charge: UsageCharge) -> None:
    """Adds one model turn's tokens to the user's usage (the ledger's daily rows, which
    the quota is checked against), as a chat answer does."""
    async with sessions() as db, db.begin():
        await add_usage(db, charge)
