"""Queries on `runs` and `run_events`. Callers own the session and the transaction, and
check the project role before touching a project's runs. Appending events is the event
log's job (log.py): only it moves `last_seq`."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.agents.runs.events import ACTIVE_STATUSES, ApprovalGiven, RunStatus
from server.core.ids import new_id
from server.core.pagination import Page, keyset
from server.db.agent_models import Conversation, MessageRow
from server.db.models import ProjectMember, User
from server.db.run_models import RunEventRow, RunRow

ENDED = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)
ACTIVE = tuple(status.value for status in ACTIVE_STATUSES)

RUNS = cast(Table, RunRow.__table__)
EVENTS = cast(Table, RunEventRow.__table__)

# --- runs --------------------------------------------------------------------------------


async def insert_run(db: AsyncSession, **columns: Any) -> RunRow:
    """A new run row (flushed, with its server-set times loaded)."""
    row = RunRow(**columns)
    db.add(row)
    await db.flush()
    await db.refresh(row)
    return row


async def get_run(db: AsyncSession, run_id: uuid.UUID, *, lock: bool = False) -> RunRow | None:
    query = select(RunRow).where(RunRow.id == run_id)
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


_MEMBER_ROLE = (
    select(ProjectMember.role)
    .where(
        ProjectMember.project_id == RunRow.project_id,
        ProjectMember.user_id == bindparam("user_id"),
    )
    .scalar_subquery()
    .label("member_role")
)


async def run_with_role(
    db: AsyncSession, run_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[RunRow, str | None] | None:
    """The run and the user's membership role in its project (None: not a member), in one
    query; None when the run does not exist."""
    query = select(RunRow, _MEMBER_ROLE).where(RunRow.id == run_id)
    found = (await db.execute(query, {"user_id": user_id})).first()
    if found is None:
        return None
    row, role = found
    return row, role


async def list_runs(
    db: AsyncSession,
    project_id: uuid.UUID,
    page: Page,
    status: RunStatus | None = None,
    task_id: uuid.UUID | None = None,
) -> list[RunRow]:
    """Newest first, keyset on the (time-ordered) id: up to `page.size + 1` rows (see
    `pagination.listed`)."""
    query = select(RunRow).where(RunRow.project_id == project_id)
    if status is not None:
        query = query.where(RunRow.status == status.value)
    if task_id is not None:
        query = query.where(RunRow.task_id == task_id)
    query = keyset(query, RunRow.id, page, descending=True)
    return list((await db.execute(query)).scalars())


async def count_active_runs(db: AsyncSession, user_id: uuid.UUID) -> int:
    """Runs the user started that have not ended (queued, running, waiting)."""
    count = await db.scalar(
        select(func.count())
        .select_from(RunRow)
        .where(RunRow.creator_id == user_id, RunRow.status.in_(ACTIVE))
    )
    return int(count or 0)


async def set_sandbox(
    db: AsyncSession, run_id: uuid.UUID, lease_token: int, sandbox_id: uuid.UUID
) -> bool:
    """Records the run's sandbox, if the writer still holds the lease (False otherwise)."""
    result = await db.execute(
        update(RunRow)
        .where(
            RunRow.id == run_id,
            RunRow.lease_token == lease_token,
            RunRow.status.not_in(ENDED),
        )
        .values(sandbox_id=sandbox_id, update_time=func.now())
        .returning(RunRow.id)
    )
    return result.first() is not None


async def _updated(db: AsyncSession, statement: Any) -> RunRow | None:
    statement = statement.returning(RunRow).execution_options(populate_existing=True)
    return cast(RunRow | None, (await db.execute(statement)).scalar_one_or_none())


async def request_cancel(db: AsyncSession, run_id: uuid.UUID) -> RunRow | None:
    """Sets the run's cancel flag; None when it does not exist or has ended."""
    return await _updated(
        db,
        update(RunRow)
        .where(RunRow.id == run_id, RunRow.status.not_in(ENDED))
        .values(cancel_requested=True, update_time=func.now()),
    )


async def record_approval(
    db: AsyncSession,
    run_id: uuid.UUID,
    tool_call_id: str,
    decision: ApprovalGiven | Mapping[str, Any],
) -> RunRow | None:
    """Stores an editor's decision on the waiting call and makes the run claimable again
    (status queued; the owner that resumes it records the decision as an event). A
    compare-and-set: None unless the run waits for approval of exactly `tool_call_id`.
    `decision` is the ApprovalGiven, or its fields as a mapping."""
    if isinstance(decision, ApprovalGiven):
        decision = dataclasses.asdict(decision)
    return await _updated(
        db,
        update(RunRow)
        .where(
            RunRow.id == run_id,
            RunRow.status == RunStatus.WAITING_FOR_APPROVAL.value,
            RunRow.pending_tool_call["id"].astext == tool_call_id,
        )
        .values(
            approval=dict(decision),
            status=RunStatus.QUEUED.value,
            update_time=func.now(),
        ),
    )


async def push_inbox(
    db: AsyncSession, run_id: uuid.UUID, message: Mapping[str, Any]
) -> RunRow | None:
    """Appends a steering message ({"content", "author_user_id"}) to the run's inbox;
    None when the run does not exist or has ended."""
    entry = bindparam("message", dict(message), type_=JSONB)
    appended = RunRow.inbox.op("||", return_type=JSONB)(func.jsonb_build_array(entry))
    return await _updated(
        db,
        update(RunRow)
        .where(RunRow.id == run_id, RunRow.status.not_in(ENDED))
        .values(inbox=appended, update_time=func.now()),
    )


# --- events ------------------------------------------------------------------------------


async def insert_events(db: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows of `run_events` ({"run_id", "seq", "kind", "payload", "internal"})."""
    if rows:
        await db.execute(insert(RunEventRow).values(list(rows)))


async def read_events(
    db: AsyncSession, run_id: uuid.UUID, after_seq: int, limit: int
) -> list[tuple[int, bytes, dict[str, Any] | None, datetime]]:
    """(seq, payload, internal, create_time) of the run's events after `after_seq`, in
    order, at most `limit`."""
    query = (
        select(RunEventRow.seq, RunEventRow.payload, RunEventRow.internal, RunEventRow.create_time)
        .where(RunEventRow.run_id == run_id, RunEventRow.seq > after_seq)
        .order_by(RunEventRow.seq)
        .limit(limit)
    )
    return [
        (seq, payload, internal, time) for seq, payload, internal, time in await db.execute(query)
    ]


async def tool_call_payloads(db: AsyncSession, run_id: uuid.UUID, limit: int = 50) -> list[bytes]:
    """Payloads of the run's latest `tool_call` events, newest first."""
    query = (
        select(RunEventRow.payload)
        .where(RunEventRow.run_id == run_id, RunEventRow.kind == "tool_call")
        .order_by(RunEventRow.seq.desc())
        .limit(limit)
    )
    return list((await db.execute(query)).scalars())


# --- the transcript (the run's conversation) -----------------------------------------------


async def count_transcript(db: AsyncSession, run_id: uuid.UUID, count: int) -> uuid.UUID | None:
    """Counts `count` new messages in the run's conversation and moves it to the top of the
    recently updated list, as a chat turn does; its id, or None when the run has none (it
    was deleted). Locks the conversation's row, before the run's: the order in which
    deleting the conversation locks them (it unsets `runs.conversation_id`)."""
    conversation = select(RunRow.conversation_id).where(RunRow.id == run_id).scalar_subquery()
    return cast(
        uuid.UUID | None,
        await db.scalar(
            update(Conversation)
            .where(Conversation.id == conversation)
            .values(
                message_count=Conversation.message_count + count,
                update_time=func.now(),
                last_message_time=func.now(),
            )
            .returning(Conversation.id)
        ),
    )


async def insert_messages(
    db: AsyncSession, conversation_id: uuid.UUID, messages: Sequence[Mapping[str, Any]]
) -> None:
    """Messages (their columns but id and conversation), in order (ids are time-ordered)."""
    if messages:
        rows = [{"id": new_id(), "conversation_id": conversation_id, **m} for m in messages]
        await db.execute(insert(MessageRow).values(rows))


async def run_state(db: AsyncSession, run_id: uuid.UUID) -> tuple[str, int] | None:
    """(status, last_seq) of a run, or None when it does not exist."""
    found = (
        await db.execute(select(RunRow.status, RunRow.last_seq).where(RunRow.id == run_id))
    ).first()
    return (found[0], found[1]) if found is not None else None


async def creator_account(db: AsyncSession, user_id: uuid.UUID) -> tuple[str, bool] | None:
    """(role, disabled) of the account a run acts as; None when it no longer exists."""
    row = (await db.execute(select(User.role, User.disabled).where(User.id == user_id))).first()
    return None if row is None else (str(row[0]), bool(row[1]))
