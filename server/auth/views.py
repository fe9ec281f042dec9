"""What the auth domain hands to the servicer: plain values, no ORM rows, no protos."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.db.models import ApiKey, AuditEvent, Session, User


@dataclass(frozen=True)
class UserView:
    id: uuid.UUID
    email: str
    display_name: str
    role: str
    disabled: bool
    email_verified: bool
    create_time: datetime
    update_time: datetime
    last_login_time: datetime | None

    @classmethod
    def of(cls, row: User) -> UserView:
        return cls(
            id=row.id,
            email=row.email,
            display_name=row.display_name,
            role=row.role,
            disabled=row.disabled,
            email_verified=row.email_verified,
            create_time=row.create_time,
            update_time=row.update_time,
            last_login_time=row.last_login_time,
        )

    @classmethod
    def from_columns(cls, row: Any) -> UserView:
        """From a row holding User's columns by name (an asyncpg Record)."""
        return cls(**{name: row[name] for name in _USER_VIEW_FIELDS})


_USER_VIEW_FIELDS = tuple(UserView.__dataclass_fields__)


@dataclass(frozen=True)
class SessionView:
    id: uuid.UUID
    user_agent: str
    peer_address: str
    create_time: datetime
    last_use_time: datetime
    expire_time: datetime

    @classmethod
    def of(cls, row: Session) -> SessionView:
        return cls(
            id=row.id,
            user_agent=row.user_agent,
            peer_address=row.peer_address,
            create_time=row.create_time,
            last_use_time=row.last_use_time,
            expire_time=row.expire_time,
        )


@dataclass(frozen=True)
class ApiKeyView:
    id: uuid.UUID
    name: str
    prefix: str
    create_time: datetime
    expire_time: datetime | None
    last_used_time: datetime | None
    revoke_time: datetime | None
    scopes: tuple[str, ...]

    @classmethod
    def of(cls, row: ApiKey) -> ApiKeyView:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            create_time=row.create_time,
            expire_time=row.expire_time,
            last_used_time=row.last_used_time,
            revoke_time=row.revoke_time,
            scopes=tuple(row.scopes),
        )


@dataclass(frozen=True)
class AuditEventView:
    id: uuid.UUID
    action: str
    actor_id: uuid.UUID | None
    subject_id: uuid.UUID | None
    target: str
    peer_address: str
    user_agent: str
    create_time: datetime
    details: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEventView:
        return cls(
            id=row.id,
            action=row.action,
            actor_id=row.actor_id,
            subject_id=row.subject_id,
            target=row.target,
            peer_address=row.peer_address,
            user_agent=row.user_agent,
            create_time=row.create_time,
            details=dict(row.details),
        )


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    access_expire_time: datetime
    refresh_token: str
    refresh_expire_time: datetime
    session_id: uuid.UUID


@dataclass(frozen=True)
class SignedIn:
    user: UserView
    tokens: IssuedTokens


@dataclass(frozen=True)
class CreatedApiKey:
    key: ApiKeyView
    secret: str
