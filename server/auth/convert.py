"""AuthService domain values ↔ protos: the only place the auth domain meets generated code."""

from __future__ import annotations

from typing import TypeVar

from forge.auth.v1 import auth_pb2

from server.auth.audit import Action
from server.auth.limits import LimitsView
from server.auth.stats import SystemCounts
from server.auth.views import (
    ApiKeyView,
    AuditEventView,
    IssuedTokens,
    SessionView,
    SignedIn,
    UserView,
)
from server.core.errors import FieldViolation, InvalidArgument
from server.core.timestamps import to_timestamp, utcnow

ROLE_TO_PROTO = {"user": auth_pb2.ROLE_USER, "admin": auth_pb2.ROLE_ADMIN}
ROLE_FROM_PROTO = {v: k for k, v in ROLE_TO_PROTO.items()}

SignedInResponse = TypeVar(
    "SignedInResponse",
    auth_pb2.RegisterResponse,
    auth_pb2.LoginResponse,
    auth_pb2.RefreshTokenResponse,
)


def action_to_proto(action: str) -> auth_pb2.AuditAction.ValueType:
    try:
        return auth_pb2.AuditAction.Value("AUDIT_ACTION_" + action.upper())
    except ValueError:
        return auth_pb2.AUDIT_ACTION_UNSPECIFIED


def action_from_proto(value: int) -> str | None:
    if value == auth_pb2.AUDIT_ACTION_UNSPECIFIED:
        return None
    if value not in auth_pb2.AuditAction.values():
        raise InvalidArgument.of([FieldViolation("action", "is not a known audit action")])
    name = (
        auth_pb2.AuditAction.Name(auth_pb2.AuditAction.ValueType(value))
        .removeprefix("AUDIT_ACTION_")
        .lower()
    )
    return Action(name).value


def user_to_proto(user: UserView) -> auth_pb2.User:
    return auth_pb2.User(
        id=str(user.id),
        email=user.email,
        display_name=user.display_name,
        role=ROLE_TO_PROTO[user.role],
        disabled=user.disabled,
        email_verified=user.email_verified,
        create_time=to_timestamp(user.create_time),
        update_time=to_timestamp(user.update_time),
        last_login_time=to_timestamp(user.last_login_time),
    )


def tokens_to_proto(tokens: IssuedTokens) -> auth_pb2.Tokens:
    return auth_pb2.Tokens(
        access_token=tokens.access_token,
        access_token_expire_time=to_timestamp(tokens.access_expire_time),
        refresh_token=tokens.refresh_token,
        refresh_token_expire_time=to_timestamp(tokens.refresh_expire_time),
        session_id=str(tokens.session_id),
        token_type="Bearer",
    )


def signed_in(result: SignedIn, response_type: type[SignedInResponse]) -> SignedInResponse:
    return response_type(user=user_to_proto(result.user), tokens=tokens_to_proto(result.tokens))


def session_to_proto(session: SessionView, current_session_id: str | None) -> auth_pb2.Session:
    return auth_pb2.Session(
        id=str(session.id),
        user_agent=session.user_agent,
        peer_address=session.peer_address,
        create_time=to_timestamp(session.create_time),
        last_use_time=to_timestamp(session.last_use_time),
        expire_time=to_timestamp(session.expire_time),
        current=str(session.id) == current_session_id,
    )


def api_key_to_proto(key: ApiKeyView) -> auth_pb2.ApiKey:
    return auth_pb2.ApiKey(
        id=str(key.id),
        name=key.name,
        prefix=key.prefix,
        create_time=to_timestamp(key.create_time),
        expire_time=to_timestamp(key.expire_time),
        last_used_time=to_timestamp(key.last_used_time),
        revoke_time=to_timestamp(key.revoke_time),
        scopes=list(key.scopes),
    )


def audit_event_to_proto(event: AuditEventView) -> auth_pb2.AuditEvent:
    return auth_pb2.AuditEvent(
        id=str(event.id),
        action=action_to_proto(event.action),
        actor_user_id=str(event.actor_id) if event.actor_id else "",
        subject_user_id=str(event.subject_id) if event.subject_id else "",
        target=event.target,
        peer_address=event.peer_address,
        user_agent=event.user_agent,
        create_time=to_timestamp(event.create_time),
        metadata={k: str(v) for k, v in event.details.items()},
    )


def system_stats_to_proto(counts: SystemCounts) -> auth_pb2.SystemStats:
    return auth_pb2.SystemStats(
        user_count=counts.get("users", 0),
        disabled_user_count=counts.get("disabled_users", 0),
        project_count=counts.get("projects", 0),
        conversation_count=counts.get("conversations", 0),
        message_count=counts.get("messages", 0),
        run_count=counts.get("runs", 0),
        active_run_count=counts.get("active_runs", 0),
        sandbox_count=counts.get("live_sandboxes", 0),
        artifact_count=counts.get("artifacts", 0),
        input_tokens=counts.get("input_tokens", 0),
        output_tokens=counts.get("output_tokens", 0),
        compute_time=to_timestamp(utcnow()),
    )


def limits_to_proto(view: LimitsView) -> auth_pb2.UserLimits:
    limits = view.limits
    return auth_pb2.UserLimits(
        user_id=str(view.user_id),
        max_concurrent_execs=limits.max_concurrent_execs,
        max_sandboxes=limits.max_sandboxes,
        max_concurrent_streams=limits.max_concurrent_streams,
        max_active_runs=limits.max_active_runs,
        max_artifact_bytes=limits.max_artifact_bytes,
        overridden_fields=sorted(limits.overridden),
    )


def limit_changes(limits: auth_pb2.UserLimits, paths: set[str]) -> dict[str, int]:
    """The limits an UpdateUserLimits sets (by field name; 0: back to the default)."""
    return {name: int(getattr(limits, name)) for name in sorted(paths)}
