"""What a batch of events does to the run's row. The log appends events and, in the same
statement that reserves their seqs, applies this projection, so the row (status, steps,
tokens, pending approval, result) never disagrees with the log. Pure: no I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal_column, null, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from server.agents.runs.events import (
    ApprovalGiven,
    Completed,
    Failed,
    RunEvent,
    RunStatus,
    StatusChanged,
    ToolCalled,
    TranscriptSummarized,
    TurnUsage,
    UserSteered,
)

_KEEP: Any = object()
"""A column the batch leaves as it is."""


@dataclass(frozen=True, slots=True)
class Projection:
    status: RunStatus | None = None
    started: bool = False
    """A RUNNING status: start_time is set if it is not yet."""
    step: int = 0
    """The latest model turn begun (0: none in the batch)."""
    pending_tool_call: Any = _KEEP
    """dict (the call now waiting), None (cleared) or _KEEP."""
    waiting_for: str = ""
    """The id of the call now waiting when its ToolCalled is not in the batch (the log
    looks it up)."""
    release_lease: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    clear_approval: bool = False
    inbox_taken: int = 0
    """Steering messages now recorded as events (the oldest of the inbox)."""
    result: str | None = None
    error: dict[str, Any] | None = None
    ended: bool = False

    @property
    def keeps_pending(self) -> bool:
        return self.pending_tool_call is _KEEP


def project(events: Sequence[RunEvent]) -> Projection:
    """The effect of `events` (in order) on the run's row."""
    status: RunStatus | None = None
    started = False
    step = 0
    pending: Any = _KEEP
    waiting_for = ""
    release = False
    input_tokens = output_tokens = 0
    clear_approval = False
    inbox_taken = 0
    result: str | None = None
    error: dict[str, Any] | None = None
    ended = False
    calls: dict[str, ToolCalled] = {}
    for event in events:
        if isinstance(event, ToolCalled):
            calls[event.id] = event
        elif isinstance(event, StatusChanged):
            status = event.status
            started = started or event.status is RunStatus.RUNNING
            if event.step > 0:
                step = event.step
            if event.status is RunStatus.WAITING_FOR_APPROVAL:
                # A waiting run holds no lease: approving it makes it claimable again.
                release = True
                call = calls.get(event.tool_call_id)
                if call is not None:
                    pending = {"id": call.id, "name": call.name, "arguments": call.arguments}
                    waiting_for = ""
                else:
                    pending = _KEEP
                    waiting_for = event.tool_call_id
        elif isinstance(event, TurnUsage | TranscriptSummarized):
            input_tokens += event.input_tokens
            output_tokens += event.output_tokens
        elif isinstance(event, ApprovalGiven):
            pending, waiting_for, clear_approval = None, "", True
        elif isinstance(event, UserSteered):
            inbox_taken += 1
        elif isinstance(event, Completed):
            status, result, ended = event.status, event.result, True
            pending, waiting_for, release = None, "", True
        elif isinstance(event, Failed):
            status, ended = RunStatus.FAILED, True
            pending, waiting_for, release = None, "", True
            error = {
                "code": event.code,
                "reason": event.reason,
                "message": event.message,
                "metadata": dict(event.metadata),
            }
    return Projection(
        status=status,
        started=started,
        step=step,
        pending_tool_call=pending,
        waiting_for=waiting_for,
        release_lease=release,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        clear_approval=clear_approval,
        inbox_taken=inbox_taken,
        result=result,
        error=error,
        ended=ended,
    )


def column_values(projection: Projection, columns: Any) -> dict[str, Any]:
    """The projection as UPDATE values on the `runs` table (`columns`: its `.c`)."""
    values: dict[str, Any] = {"update_time": func.now()}
    if projection.status is not None:
        values["status"] = projection.status.value
    if projection.started:
        values["start_time"] = func.coalesce(columns.start_time, func.now())
    if projection.step > 0:
        values["step_count"] = projection.step
    if not projection.keeps_pending:
        pending = projection.pending_tool_call
        values["pending_tool_call"] = null() if pending is None else pending
    if projection.release_lease:
        values["owner"] = None
        values["lease_expires_at"] = None
    if projection.input_tokens:
        values["input_tokens"] = columns.input_tokens + projection.input_tokens
    if projection.output_tokens:
        values["output_tokens"] = columns.output_tokens + projection.output_tokens
    if projection.clear_approval:
        values["approval"] = null()
    if projection.inbox_taken:
        values["inbox"] = _inbox_without_oldest(columns.inbox, projection.inbox_taken)
    if projection.result is not None:
        values["result"] = projection.result
    if projection.error is not None:
        values["error"] = projection.error
    if projection.ended:
        values["end_time"] = func.now()
    return values


def _inbox_without_oldest(inbox: Any, count: int) -> Any:
    """The JSON array `inbox` without its first `count` entries."""
    entries = (
        func.jsonb_array_elements(inbox)
        .table_valued("value", with_ordinality="ordinality")
        .render_derived()
    )
    kept = func.jsonb_agg(aggregate_order_by(entries.c.value, entries.c.ordinality))
    return (
        select(func.coalesce(kept, literal_column("'[]'::jsonb")))
        .where(entries.c.ordinality > count)
        .scalar_subquery()
    )
