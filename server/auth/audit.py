"""The audit log: who did what, from where."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.core.audit_log import record_audit_event
from server.db.models import AuditEvent


class Action(Enum):
    REGISTER = "register"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOGIN_RATE_LIMITED = "login_rate_limited"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    LOGOUT = "logout"
    SESSION_REVOKED = "session_revoked"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    PASSWORD_RESET = "password_reset"
    EMAIL_VERIFIED = "email_verified"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    ROLE_CHANGED = "role_changed"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    PROFILE_UPDATED = "profile_updated"
    LIMITS_CHANGED = "limits_changed"
    # Written by the agents service (server/core/audit_log.py), listed here.
    PROVIDER_KEY_CREATED = "provider_key_created"
    PROVIDER_KEY_DELETED = "provider_key_deleted"
    PROVIDER_SWITCHED = "provider_switched"


def record(
    session: AsyncSession,
    action: Action,
    *,
    actor_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Adds an audit event to `session` (it commits with the change it describes)."""
    return record_audit_event(
        session,
        action.value,
        actor_id=actor_id,
        subject_id=subject_id,
        target=target,
        details=details,
    )
