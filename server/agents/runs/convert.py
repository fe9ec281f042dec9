"""Runs ↔ forge.agents.v1 protos: the run view as a `Run`, and the domain events of a run
as the serialised `RunEvent`s the log stores (without `seq` and `create_time`, which the
log adds when it reads them back), so a replay is byte-identical to what was stored."""

from __future__ import annotations

from typing import cast

from forge.agents.v1 import agents_pb2
from forge.artifacts.v1 import artifacts_pb2
from forge.sandbox.v1 import sandbox_pb2
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from server.agents.convert import stored_error
from server.agents.runs.events import (
    ApprovalGiven,
    ApprovalMode,
    ArtifactSaved,
    Completed,
    Delta,
    ExecReported,
    Failed,
    RunEvent,
    RunStatus,
    StatusChanged,
    StoredEvent,
    ToolAnswered,
    ToolCalled,
    TranscriptSummarized,
    TurnUsage,
    UserSteered,
)
from server.agents.runs.views import RunView
from server.core.errors import ForgeError
from server.core.ports import ExecBegan, ExecChunk, ExecEnded, ExecPortEvent, ExitReasonName
from server.core.status import ERROR_DOMAIN, to_status_proto
from server.core.timestamps import from_timestamp, to_duration, to_timestamp

RUN_STATUSES: dict[RunStatus, agents_pb2.RunStatus.ValueType] = {
    RunStatus.QUEUED: agents_pb2.RUN_STATUS_QUEUED,
    RunStatus.RUNNING: agents_pb2.RUN_STATUS_RUNNING,
    RunStatus.WAITING_FOR_APPROVAL: agents_pb2.RUN_STATUS_WAITING_FOR_APPROVAL,
    RunStatus.SUCCEEDED: agents_pb2.RUN_STATUS_SUCCEEDED,
    RunStatus.FAILED: agents_pb2.RUN_STATUS_FAILED,
    RunStatus.CANCELLED: agents_pb2.RUN_STATUS_CANCELLED,
}
RUN_STATUSES_FROM_PROTO = {proto: status for status, proto in RUN_STATUSES.items()}

APPROVAL_MODES: dict[ApprovalMode, agents_pb2.ApprovalMode.ValueType] = {
    ApprovalMode.AUTO: agents_pb2.APPROVAL_MODE_AUTO,
    ApprovalMode.ASK_BEFORE_BASH: agents_pb2.APPROVAL_MODE_ASK_BEFORE_BASH,
    ApprovalMode.ASK_BEFORE_WRITES: agents_pb2.APPROVAL_MODE_ASK_BEFORE_WRITES,
}
APPROVAL_MODES_FROM_PROTO = {proto: mode for mode, proto in APPROVAL_MODES.items()}
APPROVAL_MODES_FROM_PROTO[agents_pb2.APPROVAL_MODE_UNSPECIFIED] = ApprovalMode.AUTO

EXIT_REASONS: dict[ExitReasonName, sandbox_pb2.ExitReason.ValueType] = {
    "exited": sandbox_pb2.EXIT_REASON_EXITED,
    "timeout": sandbox_pb2.EXIT_REASON_TIMEOUT,
    "idle_timeout": sandbox_pb2.EXIT_REASON_IDLE_TIMEOUT,
    "cancelled": sandbox_pb2.EXIT_REASON_CANCELLED,
    "oom_killed": sandbox_pb2.EXIT_REASON_OOM_KILLED,
    "killed": sandbox_pb2.EXIT_REASON_KILLED,
    "sandbox_lost": sandbox_pb2.EXIT_REASON_SANDBOX_LOST,
}
EXIT_REASONS_FROM_PROTO = {proto: name for name, proto in EXIT_REASONS.items()}

_RunEvent = agents_pb2.RunEvent


def _id(value: object | None) -> str:
    return str(value) if value is not None else ""


# --- runs --------------------------------------------------------------------------------


def run_status(status: RunStatus) -> agents_pb2.RunStatus.ValueType:
    return RUN_STATUSES[status]


def run_to_proto(run: RunView) -> agents_pb2.Run:
    proto = agents_pb2.Run(
        id=str(run.id),
        project_id=str(run.project_id),
        agent_id=run.agent_id,
        goal=run.goal,
        task_id=_id(run.task_id),
        conversation_id=_id(run.conversation_id),
        model=run.model,
        status=RUN_STATUSES[run.status],
        sandbox_id=_id(run.sandbox_id),
        result=run.result,
        usage=agents_pb2.TokenUsage(input_tokens=run.input_tokens, output_tokens=run.output_tokens),
        step_count=run.step_count,
        max_steps=run.max_steps,
        last_seq=run.last_seq,
        creator_user_id=_id(run.creator_id),
        create_time=to_timestamp(run.create_time),
        update_time=to_timestamp(run.update_time),
        start_time=to_timestamp(run.start_time),
        end_time=to_timestamp(run.end_time),
        approval_mode=APPROVAL_MODES[run.approval_mode],
        token_budget=run.token_budget,
        time_limit=to_duration(run.time_limit),
    )
    if run.error is not None:
        proto.error.CopyFrom(stored_error(run.error))
    call = run.pending_tool_call
    if call is not None:
        proto.pending_tool_call.CopyFrom(
            agents_pb2.ToolCall(
                id=str(call.get("id", "")),
                name=str(call.get("name", "")),
                arguments=str(call.get("arguments", "")),
            )
        )
    return proto


# --- events ------------------------------------------------------------------------------


def _exec_to_proto(event: ExecPortEvent) -> sandbox_pb2.ExecEvent:
    if isinstance(event, ExecChunk):
        if event.stream == "stdout":
            return sandbox_pb2.ExecEvent(stdout=event.data)
        return sandbox_pb2.ExecEvent(stderr=event.data)
    if isinstance(event, ExecBegan):
        return sandbox_pb2.ExecEvent(
            started=sandbox_pb2.ExecStarted(
                execution_id=event.execution_id,
                sandbox_id=event.sandbox_id,
                start_time=to_timestamp(event.start_time),
            )
        )
    return sandbox_pb2.ExecEvent(
        exit=sandbox_pb2.ExecExit(
            exit_code=event.exit_code,
            signal=event.signal,
            duration=to_duration(event.duration),
            timed_out=event.timed_out,
            oom_killed=event.oom_killed,
            output_truncated=event.output_truncated,
            reason=EXIT_REASONS[event.reason],
            stdout_bytes=event.stdout_bytes,
            stderr_bytes=event.stderr_bytes,
        )
    )


def _exec_from_proto(proto: sandbox_pb2.ExecEvent) -> ExecPortEvent:
    which = proto.WhichOneof("event")
    if which == "stdout":
        return ExecChunk("stdout", proto.stdout)
    if which == "stderr":
        return ExecChunk("stderr", proto.stderr)
    if which == "started":
        started = proto.started
        return ExecBegan(
            execution_id=started.execution_id,
            sandbox_id=started.sandbox_id,
            start_time=from_timestamp(started.start_time),
        )
    if which == "exit":
        done = proto.exit
        return ExecEnded(
            exit_code=done.exit_code,
            signal=done.signal,
            duration=done.duration.ToTimedelta(),
            timed_out=done.timed_out,
            oom_killed=done.oom_killed,
            output_truncated=done.output_truncated,
            reason=EXIT_REASONS_FROM_PROTO.get(done.reason, "killed"),
            stdout_bytes=done.stdout_bytes,
            stderr_bytes=done.stderr_bytes,
        )
    raise ValueError(f"not a stored exec event: {which}")


def _failure_status(event: Failed) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(
        reason=event.reason, domain=ERROR_DOMAIN, metadata=dict(event.metadata)
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    return status_pb2.Status(code=event.code, message=event.message, details=[packed])


def _failure(status: status_pb2.Status) -> Failed:
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
            break
    return Failed(
        code=status.code, reason=info.reason, message=status.message, metadata=dict(info.metadata)
    )


def _usage(input_tokens: int, output_tokens: int) -> agents_pb2.TokenUsage:
    return agents_pb2.TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)


class EventCodec:
    """Domain run events ↔ serialised `RunEvent` bytes (what `run_events.payload` holds).
    `kind` is the name of the event's `RunEvent` oneof field (`run_events.kind`).
    `ToolCalled.signature` is not part of the contract and not encoded (the log keeps it
    apart, see log.py)."""

    def to_proto(self, event: RunEvent) -> agents_pb2.RunEvent:
        """The event as a `RunEvent` message without `seq` and `create_time`."""
        # The hot path first: one small message per batch of model text.
        if type(event) is Delta:
            message = _RunEvent()
            message.delta.text = event.text
            return message
        if isinstance(event, StatusChanged):
            return _RunEvent(
                status=agents_pb2.RunStatusUpdate(
                    status=RUN_STATUSES[event.status],
                    message=event.message,
                    tool_call_id=event.tool_call_id,
                    step=event.step,
                )
            )
        if isinstance(event, ToolCalled):
            return _RunEvent(
                tool_call=agents_pb2.ToolCall(
                    id=event.id, name=event.name, arguments=event.arguments
                )
            )
        if isinstance(event, ToolAnswered):
            return _RunEvent(
                tool_result=agents_pb2.ToolResult(
                    tool_call_id=event.tool_call_id,
                    name=event.name,
                    content=event.content,
                    is_error=event.is_error,
                )
            )
        if isinstance(event, ExecReported):
            return _RunEvent(exec=_exec_to_proto(event.event))
        if isinstance(event, ArtifactSaved):
            message = _RunEvent()
            # The port hands the artifacts service's own contract message through.
            message.artifact.CopyFrom(cast(artifacts_pb2.Artifact, event.artifact))
            return message
        if isinstance(event, TurnUsage):
            return _RunEvent(usage=_usage(event.input_tokens, event.output_tokens))
        if isinstance(event, UserSteered):
            return _RunEvent(
                user_message=agents_pb2.RunUserMessage(
                    content=event.content, author_user_id=event.author_user_id
                )
            )
        if isinstance(event, ApprovalGiven):
            return _RunEvent(
                approval=agents_pb2.ToolCallApproval(
                    tool_call_id=event.tool_call_id,
                    approved=event.approved,
                    reason=event.reason,
                    user_id=event.user_id,
                )
            )
        if isinstance(event, TranscriptSummarized):
            return _RunEvent(
                summary=agents_pb2.TranscriptSummary(
                    text=event.text,
                    through_seq=event.through_seq,
                    usage=_usage(event.input_tokens, event.output_tokens),
                )
            )
        if isinstance(event, Completed):
            return _RunEvent(
                completed=agents_pb2.RunCompleted(
                    status=RUN_STATUSES[event.status],
                    result=event.result,
                    usage=_usage(event.input_tokens, event.output_tokens),
                )
            )
        if isinstance(event, Failed):
            return _RunEvent(error=_failure_status(event))
        raise TypeError(f"not a run event: {event!r}")

    def encode(self, event: RunEvent) -> bytes:
        return self.to_proto(event).SerializeToString()

    def kind(self, event: RunEvent) -> str:
        """The `RunEvent` oneof field the event is stored as (e.g. "tool_call")."""
        return _KINDS[type(event)]

    def decode(self, payload: bytes) -> RunEvent:
        return self.from_proto(_RunEvent.FromString(payload))

    def from_proto(self, message: agents_pb2.RunEvent) -> RunEvent:
        which = message.WhichOneof("event")
        if which == "delta":
            return Delta(message.delta.text)
        if which == "status":
            status = message.status
            return StatusChanged(
                status=RUN_STATUSES_FROM_PROTO[status.status],
                message=status.message,
                tool_call_id=status.tool_call_id,
                step=status.step,
            )
        if which == "tool_call":
            call = message.tool_call
            return ToolCalled(id=call.id, name=call.name, arguments=call.arguments)
        if which == "tool_result":
            result = message.tool_result
            return ToolAnswered(
                tool_call_id=result.tool_call_id,
                name=result.name,
                content=result.content,
                is_error=result.is_error,
            )
        if which == "exec":
            return ExecReported(_exec_from_proto(message.exec))
        if which == "artifact":
            artifact = artifacts_pb2.Artifact()
            artifact.CopyFrom(message.artifact)
            return ArtifactSaved(artifact)
        if which == "usage":
            return TurnUsage(message.usage.input_tokens, message.usage.output_tokens)
        if which == "user_message":
            steer = message.user_message
            return UserSteered(content=steer.content, author_user_id=steer.author_user_id)
        if which == "approval":
            approval = message.approval
            return ApprovalGiven(
                tool_call_id=approval.tool_call_id,
                approved=approval.approved,
                reason=approval.reason,
                user_id=approval.user_id,
            )
        if which == "summary":
            summary = message.summary
            return TranscriptSummarized(
                text=summary.text,
                through_seq=summary.through_seq,
                input_tokens=summary.usage.input_tokens,
                output_tokens=summary.usage.output_tokens,
            )
        if which == "completed":
            done = message.completed
            return Completed(
                status=RUN_STATUSES_FROM_PROTO[done.status],
                result=done.result,
                input_tokens=done.usage.input_tokens,
                output_tokens=done.usage.output_tokens,
            )
        if which == "error":
            return _failure(message.error)
        raise ValueError(f"not a stored run event: {which}")


_KINDS: dict[type, str] = {
    StatusChanged: "status",
    Delta: "delta",
    ToolCalled: "tool_call",
    ToolAnswered: "tool_result",
    ExecReported: "exec",
    ArtifactSaved: "artifact",
    TurnUsage: "usage",
    UserSteered: "user_message",
    ApprovalGiven: "approval",
    TranscriptSummarized: "summary",
    Completed: "completed",
    Failed: "error",
}


# --- WatchRun ----------------------------------------------------------------------------


def stored_event_to_proto(event: StoredEvent) -> agents_pb2.RunEvent:
    """What WatchRun sends: the stored message with the stored `seq` and `create_time`."""
    message = _RunEvent.FromString(event.payload)
    message.seq = event.seq
    stamp = to_timestamp(event.create_time)
    assert stamp is not None
    message.create_time.CopyFrom(stamp)
    return message


def watch_error_event(error: ForgeError, last_seq: int) -> agents_pb2.RunEvent:
    """The in-band `error` that ends a WatchRun stream which failed (not a stored event):
    it carries the seq of the last event delivered, so a client resuming after it loses
    nothing."""
    return _RunEvent(seq=last_seq, error=to_status_proto(error))
