"""A run as the domain hands it out: a frozen copy of its row (never the ORM row itself)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from server.agents.runs.events import ApprovalMode, RunStatus
from server.agents.views import StoredError
from server.db.run_models import RunRow


@dataclass(frozen=True, slots=True)
class RunView:
    """Mirrors the `Run` message, plus the columns the loop reads (cancel flag, approval,
    inbox)."""

    id: uuid.UUID
    project_id: uuid.UUID
    agent_id: str
    goal: str
    task_id: uuid.UUID | None
    conversation_id: uuid.UUID | None
    model: str
    status: RunStatus
    approval_mode: ApprovalMode
    sandbox_id: uuid.UUID | None
    result: str
    error: StoredError | None
    pending_tool_call: dict[str, Any] | None
    """{"id", "name", "arguments"} of the call waiting for approval."""
    input_tokens: int
    output_tokens: int
    step_count: int
    max_steps: int
    token_budget: int
    time_limit: timedelta
    last_seq: int
    creator_id: uuid.UUID | None
    create_time: datetime
    update_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    cancel_requested: bool = False
    approval: dict[str, Any] | None = None
    """An editor's decision not yet recorded as an event."""
    inbox: tuple[dict[str, Any], ...] = ()
    """Steering messages not yet recorded as events, oldest first."""

    @classmethod
    def of(cls, row: RunRow) -> RunView:
        error = row.error
        return cls(
            id=row.id,
            project_id=row.project_id,
            agent_id=row.agent_id,
            goal=row.goal,
            task_id=row.task_id,
            conversation_id=row.conversation_id,
            model=row.model,
            status=RunStatus(row.status),
            approval_mode=ApprovalMode(row.approval_mode),
            sandbox_id=row.sandbox_id,
            result=row.result,
            error=StoredError(
                code=int(error.get("code", 13)),
                reason=str(error.get("reason", "")),
                message=str(error.get("message", "")),
                metadata={str(k): str(v) for k, v in (error.get("metadata") or {}).items()},
            )
            if error is not None
            else None,
            pending_tool_call=dict(row.pending_tool_call) if row.pending_tool_call else None,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            step_count=row.step_count,
            max_steps=row.max_steps,
            token_budget=row.token_budget,
            time_limit=timedelta(seconds=row.time_limit_seconds),
            last_seq=row.last_seq,
            creator_id=row.creator_id,
            create_time=row.create_time,
            update_time=row.update_time,
            start_time=row.start_time,
            end_time=row.end_time,
            cancel_requested=row.cancel_requested,
            approval=dict(row.approval) if row.approval else None,
            inbox=tuple(dict(item) for item in row.inbox or ()),
        )
