"""EventLog.append writes a batch's transcript messages into the run's conversation in the
batch's own transaction: all or nothing with the events (a stale lease writes neither),
counted on the conversation, and skipped once the conversation is gone.

Uses the database and fixtures of test_log.py (no server and no worker on it)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.runs.events import Delta, RunStatus, StatusChanged, ToolCalled, TurnUsage
from server.agents.runs.log import EventLog, LeaseLost
from server.agents.runs.mirror import TranscriptMessage
from server.db.agent_models import Conversation, MessageRow
from server.db.run_models import RunRow
from tests.runs import test_log
from tests.runs.test_log import LEASE, Team, new_run, run_row

runs_engine = test_log.runs_engine
runs_sessions = test_log.runs_sessions
event_log = test_log.event_log
team = test_log.team

GOAL = TranscriptMessage("user", "write a function")
TURN = TranscriptMessage(
    "assistant",
    "Let me look.",
    tool_calls=({"id": "c1", "name": "bash", "arguments": "{}"},),
    model="echo",
    input_tokens=5,
    output_tokens=3,
    finish_reason="tool_use",
)


async def run_with_conversation(
    sessions: async_sessionmaker[AsyncSession], team: Team
) -> tuple[uuid.UUID, uuid.UUID]:
    async with sessions() as db, db.begin():
        conversation = Conversation(project_id=team.project_id, title="run", message_count=0)
        db.add(conversation)
        await db.flush()
        conversation_id = conversation.id
    return await new_run(sessions, team, conversation_id=conversation_id), conversation_id


async def stored(
    sessions: async_sessionmaker[AsyncSession], conversation_id: uuid.UUID
) -> tuple[int, list[tuple[str, str, list[dict[str, str]], str | None]]]:
    async with sessions() as db:
        count = await db.scalar(
            select(Conversation.message_count).where(Conversation.id == conversation_id)
        )
        rows = await db.execute(
            select(MessageRow.role, MessageRow.content, MessageRow.tool_calls, MessageRow.status)
            .where(MessageRow.conversation_id == conversation_id)
            .order_by(MessageRow.id)
        )
        return int(count or 0), [(r, c, t, s) for r, c, t, s in rows]


async def test_messages_are_written_with_their_events(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id, conversation_id = await run_with_conversation(runs_sessions, team)
    await event_log.append(
        run_id, LEASE, [StatusChanged(RunStatus.RUNNING, step=1)], transcript=[GOAL]
    )
    await event_log.append(run_id, LEASE, [Delta("Let me ")])
    await event_log.append(
        run_id,
        LEASE,
        [Delta("look."), ToolCalled("c1", "bash", "{}"), TurnUsage(5, 3)],
        transcript=[TURN],
    )
    count, messages = await stored(runs_sessions, conversation_id)
    assert count == 2
    calls = [{"id": "c1", "name": "bash", "arguments": "{}"}]
    assert messages == [
        ("user", "write a function", [], "complete"),
        ("assistant", "Let me look.", calls, "complete"),
    ]


async def test_a_stale_lease_writes_no_message(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id, conversation_id = await run_with_conversation(runs_sessions, team)
    async with runs_sessions() as db, db.begin():  # another process takes the run over
        await db.execute(
            update(RunRow).where(RunRow.id == run_id).values(lease_token=RunRow.lease_token + 1)
        )
    with pytest.raises(LeaseLost):
        await event_log.append(
            run_id, LEASE, [StatusChanged(RunStatus.RUNNING, step=1)], transcript=[GOAL]
        )
    assert await stored(runs_sessions, conversation_id) == (0, [])
    assert (await run_row(runs_sessions, run_id)).last_seq == 0


async def test_a_deleted_conversation_gets_no_more_messages(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id, conversation_id = await run_with_conversation(runs_sessions, team)
    async with runs_sessions() as db, db.begin():
        await db.execute(delete(Conversation).where(Conversation.id == conversation_id))
    written = await event_log.append(
        run_id, LEASE, [StatusChanged(RunStatus.RUNNING, step=1)], transcript=[GOAL]
    )
    assert [item.seq for item in written] == [1]
    row = await run_row(runs_sessions, run_id)
    assert (row.conversation_id, row.last_seq) == (None, 1)
