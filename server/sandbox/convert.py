"""Sandbox domain values ↔ protos (the only sandbox module besides service.py that imports
generated code)."""

from __future__ import annotations

from datetime import timedelta

from forge.sandbox.v1 import sandbox_pb2
from google.protobuf import duration_pb2

from server.core.errors import ForgeError
from server.core.status import to_status_proto
from server.core.timestamps import to_duration, to_timedelta, to_timestamp
from server.sandbox.backend import Stream
from server.sandbox.limits import LimitRequest, Limits
from server.sandbox.views import (
    ExecEvent,
    ExecExited,
    ExecOutput,
    ExecStarted,
    ExitReason,
    FileInfo,
    RuntimeView,
    SandboxState,
    SandboxView,
)

STATE_TO_PROTO = {
    SandboxState.CREATING: sandbox_pb2.SANDBOX_STATE_CREATING,
    SandboxState.RUNNING: sandbox_pb2.SANDBOX_STATE_RUNNING,
    SandboxState.PAUSED: sandbox_pb2.SANDBOX_STATE_PAUSED,
    SandboxState.DELETED: sandbox_pb2.SANDBOX_STATE_DELETED,
    SandboxState.LOST: sandbox_pb2.SANDBOX_STATE_LOST,
    SandboxState.FAILED: sandbox_pb2.SANDBOX_STATE_FAILED,
}
STATE_FROM_PROTO = {value: key for key, value in STATE_TO_PROTO.items()}

REASON_TO_PROTO = {
    ExitReason.EXITED: sandbox_pb2.EXIT_REASON_EXITED,
    ExitReason.TIMEOUT: sandbox_pb2.EXIT_REASON_TIMEOUT,
    ExitReason.IDLE_TIMEOUT: sandbox_pb2.EXIT_REASON_IDLE_TIMEOUT,
    ExitReason.CANCELLED: sandbox_pb2.EXIT_REASON_CANCELLED,
    ExitReason.OOM_KILLED: sandbox_pb2.EXIT_REASON_OOM_KILLED,
    ExitReason.KILLED: sandbox_pb2.EXIT_REASON_KILLED,
    ExitReason.SANDBOX_LOST: sandbox_pb2.EXIT_REASON_SANDBOX_LOST,
}


def optional_duration(message: duration_pb2.Duration, present: bool) -> timedelta | None:
    if not present:
        return None
    return to_timedelta(message)


def limit_request(limits: sandbox_pb2.SandboxLimits) -> LimitRequest:
    """Zero or unset fields mean the runtime's default."""

    def positive(value: int) -> int | None:
        return value or None

    def duration(field: str) -> timedelta | None:
        if not limits.HasField(field):  # type: ignore[arg-type]
            return None
        value = to_timedelta(getattr(limits, field))
        return value or None

    return LimitRequest(
        memory_bytes=positive(limits.memory_bytes),
        cpu_millis=positive(limits.cpu_millis),
        pids=positive(limits.pids),
        disk_bytes=positive(limits.disk_bytes),
        tmp_bytes=positive(limits.tmp_bytes),
        exec_timeout=duration("exec_timeout"),
        idle_timeout=duration("idle_timeout"),
        output_limit_bytes=positive(limits.output_limit_bytes),
    )


def limits_to_proto(limits: Limits) -> sandbox_pb2.SandboxLimits:
    return sandbox_pb2.SandboxLimits(
        memory_bytes=limits.memory_bytes,
        cpu_millis=limits.cpu_millis,
        pids=limits.pids,
        disk_bytes=limits.disk_bytes,
        tmp_bytes=limits.tmp_bytes,
        exec_timeout=to_duration(limits.exec_timeout),
        idle_timeout=to_duration(limits.idle_timeout),
        output_limit_bytes=limits.output_limit_bytes,
    )


def runtime_to_proto(view: RuntimeView) -> sandbox_pb2.Runtime:
    runtime = view.runtime
    return sandbox_pb2.Runtime(
        name=runtime.name,
        display_name=runtime.display_name,
        image=runtime.image,
        languages=list(runtime.languages),
        default_limits=limits_to_proto(runtime.default_limits),
        max_limits=limits_to_proto(runtime.max_limits),
        warm_pool_size=runtime.pool_size,
        warm_pool_ready=view.pool_ready,
    )


def sandbox_to_proto(view: SandboxView) -> sandbox_pb2.Sandbox:
    return sandbox_pb2.Sandbox(
        id=view.id,
        project_id=view.project_id,
        runtime=view.runtime,
        image=view.image,
        state=STATE_TO_PROTO[view.state],
        state_message=view.state_message,
        limits=limits_to_proto(view.limits),
        warm=view.warm,
        start_duration=to_duration(view.start_duration),
        creator_user_id=view.creator_user_id,
        create_time=to_timestamp(view.create_time),
        update_time=to_timestamp(view.update_time),
        last_active_time=to_timestamp(view.last_active_time),
        expire_time=to_timestamp(view.expire_time),
    )


def file_to_proto(info: FileInfo) -> sandbox_pb2.FileEntry:
    return sandbox_pb2.FileEntry(
        path=info.path,
        size_bytes=info.size,
        is_dir=info.is_dir,
        mode=info.mode,
        modify_time=to_timestamp(info.modify_time),
        is_symlink=info.is_symlink,
    )


def exec_event_to_proto(event: ExecEvent, seq: int) -> sandbox_pb2.ExecEvent:
    if isinstance(event, ExecOutput):
        if event.stream is Stream.STDOUT:
            return sandbox_pb2.ExecEvent(seq=seq, stdout=event.data)
        return sandbox_pb2.ExecEvent(seq=seq, stderr=event.data)
    if isinstance(event, ExecStarted):
        return sandbox_pb2.ExecEvent(
            seq=seq,
            started=sandbox_pb2.ExecStarted(
                execution_id=event.execution_id,
                sandbox_id=event.sandbox_id,
                start_time=to_timestamp(event.start_time),
            ),
        )
    return sandbox_pb2.ExecEvent(seq=seq, exit=exit_to_proto(event))


def exit_to_proto(event: ExecExited) -> sandbox_pb2.ExecExit:
    return sandbox_pb2.ExecExit(
        exit_code=event.exit_code,
        signal=event.signal,
        duration=to_duration(event.duration),
        timed_out=event.timed_out,
        oom_killed=event.oom_killed,
        output_truncated=event.output_truncated,
        reason=REASON_TO_PROTO[event.reason],
        stdout_bytes=event.stdout_bytes,
        stderr_bytes=event.stderr_bytes,
    )


def error_event(error: ForgeError, seq: int) -> sandbox_pb2.ExecEvent:
    return sandbox_pb2.ExecEvent(seq=seq, error=to_status_proto(error))
