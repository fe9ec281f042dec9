"""Queries over users, sessions, refresh tokens, API keys, one-time tokens and audit events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.caller_state import CallerState, state_of
from server.core.pagination import Page, keyset
from server.db.caller_state import CALLER_STATE, caller_state_columns
from server.db.models import (
    ApiKey,
    AuditEvent,
    OneTimeToken,
    RefreshToken,
    Session,
    User,
)
from server.db.reads import DirectRead


async def user_by_email(db: AsyncSession, email: str) -> User | None:
    return await db.scalar(select(User).where(User.email == email))


async def user_by_id(db: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> User | None:
    query = select(User).where(User.id == user_id)
    if lock:
        query = query.with_for_update()
    return await db.scalar(query)


# GetCurrentUser's one read: the user's profile and the caller's account state (for an access
# token, its session's too), straight on the driver like every call's state read.
_PROFILE_WITH_CALLER_STATE = DirectRead(
    select(
        *caller_state_columns(),
        User.id,
        User.email,
        User.display_name,
        User.role,
        User.disabled,
        User.email_verified,
        User.create_time,
        User.update_time,
        User.last_login_time,
    ).where(User.id == bindparam("user_id"))
)


async def profile_with_caller_state(
    sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, session_id: uuid.UUID | None
) -> tuple[CallerState, Any] | None:
    """The user's account state and profile row (columns named as User's), in one round
    trip; None when there is no such user."""
    row = await _PROFILE_WITH_CALLER_STATE.first(sessions, user_id=user_id, session_id=session_id)
    if row is None:
        return None
    state = state_of(row["caller_disabled"], row["caller_role"], row["caller_session_revoked"])
    return state, row


async def lock_registrations(db: AsyncSession) -> None:
    """Serialises registrations until the transaction ends (a transaction-level lock)."""
    await db.execute(select(func.pg_advisory_xact_lock(func.hashtext("forge.register"))))


async def any_user_exists(db: AsyncSession) -> bool:
    return bool(
        await db.scalar(select(func.count()).select_from(select(User.id).limit(1).subquery()))
    )


async def caller_state(
    sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, session_id: uuid.UUID | None
) -> CallerState | None:
    """One round trip per authenticated call: the user's status and its session's."""
    row = await CALLER_STATE.first(sessions, user_id=user_id, session_id=session_id)
    return None if row is None else state_of(*row)


async def api_key_with_user(db: AsyncSession, secret_hash: bytes) -> tuple[ApiKey, User] | None:
    row = (
        await db.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.secret_hash == secret_hash)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def touch_api_key(db: AsyncSession, key_id: uuid.UUID, every: timedelta) -> None:
    """Updates last_used_time, at most once per `every` (no write per request)."""
    await db.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_time.is_(None), ApiKey.last_used_time < func.now() - every),
        )
        .values(last_used_time=func.now())
    )


async def refresh_token_with_session(
    db: AsyncSession, token_hash: bytes
) -> tuple[RefreshToken, Session] | None:
    row = (
        await db.execute(
            select(RefreshToken, Session)
            .join(Session, Session.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == token_hash)
            .with_for_update(of=RefreshToken)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def refresh_token_locked(db: AsyncSession, token_hash: bytes) -> RefreshToken | None:
    return await db.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    )


async def revoke_session(db: AsyncSession, session_id: uuid.UUID, reason: str) -> None:
    await db.execute(
        update(Session)
        .where(Session.id == session_id, Session.revoke_time.is_(None))
        .values(revoke_time=func.now(), revoke_reason=reason)
    )


async def revoke_user_sessions(
    db: AsyncSession, user_id: uuid.UUID, reason: str, *, keep: uuid.UUID | None = None
) -> None:
    condition = and_(Session.user_id == user_id, Session.revoke_time.is_(None))
    if keep is not None:
        condition = and_(condition, Session.id != keep)
    await db.execute(
        update(Session).where(condition).values(revoke_time=func.now(), revoke_reason=reason)
    )


async def revoke_user_api_keys(db: AsyncSession, user_id: uuid.UUID) -> None:
    await db.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoke_time.is_(None))
        .values(revoke_time=func.now())
    )


@dataclass(frozen=True)
class LoginFailures:
    """Failed sign-ins of one account within the window, since its last success; and the
    attempts still being checked (in flight)."""

    total: int
    oldest: datetime | None
    from_address: int
    oldest_from_address: datetime | None
    in_flight: int
    in_flight_from_address: int


async def recent_login_failures(
    db: AsyncSession, email: str, peer: str, window: timedelta, in_flight_for: timedelta
) -> LoginFailures:
    """Failed logins for `email` within `window` since its last success, from every address
    and from `peer`. An attempt is recorded as a failure with `{"pending": true}` before its
    password is checked: younger than `in_flight_for`, it is in flight; older, its server
    died checking it, and it counts as failed."""
    last_success = (
        select(func.max(AuditEvent.create_time))
        .where(AuditEvent.action == "login_succeeded", AuditEvent.target == email)
        .scalar_subquery()
    )
    since = func.greatest(func.now() - window, func.coalesce(last_success, func.now() - window))
    from_peer = AuditEvent.peer_address == peer
    in_flight = AuditEvent.details["pending"].as_boolean().is_(True) & (
        AuditEvent.create_time > func.now() - in_flight_for
    )
    failed = ~in_flight
    row = (
        await db.execute(
            select(
                func.count().filter(failed),
                func.min(AuditEvent.create_time).filter(failed),
                func.count().filter(failed & from_peer),
                func.min(AuditEvent.create_time).filter(failed & from_peer),
                func.count().filter(in_flight),
                func.count().filter(in_flight & from_peer),
            ).where(
                AuditEvent.action == "login_failed",
                AuditEvent.target == email,
                AuditEvent.create_time > since,
            )
        )
    ).one()
    return LoginFailures(int(row[0]), row[1], int(row[2]), row[3], int(row[4]), int(row[5]))


async def one_time_token(db: AsyncSession, token_hash: bytes, purpose: str) -> OneTimeToken | None:
    return await db.scalar(
        select(OneTimeToken)
        .where(OneTimeToken.token_hash == token_hash, OneTimeToken.purpose == purpose)
        .with_for_update()
    )


async def list_sessions(db: AsyncSession, user_id: uuid.UUID, page: Page) -> list[Session]:
    query = select(Session).where(
        Session.user_id == user_id, Session.revoke_time.is_(None), Session.expire_time > func.now()
    )
    return list((await db.scalars(keyset(query, Session.id, page, descending=True))).all())


async def list_api_keys(
    db: AsyncSession, user_id: uuid.UUID, page: Page, show_revoked: bool
) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.user_id == user_id)
    if not show_revoked:
        query = query.where(ApiKey.revoke_time.is_(None))
    return list((await db.scalars(keyset(query, ApiKey.id, page, descending=True))).all())


async def list_users(
    db: AsyncSession, page: Page, query_text: str, role: str | None, disabled: bool | None
) -> list[User]:
    query = select(User)
    if query_text:
        pattern = (
            "%" + query_text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        query = query.where(or_(User.email.ilike(pattern), User.display_name.ilike(pattern)))
    if role is not None:
        query = query.where(User.role == role)
    if disabled is not None:
        query = query.where(User.disabled == disabled)
    return list((await db.scalars(keyset(query, User.id, page))).all())


async def list_audit_events(
    db: AsyncSession, page: Page, user_id: uuid.UUID | None, action: str | None
) -> list[AuditEvent]:
    query = select(AuditEvent)
    if user_id is not None:
        query = query.where(or_(AuditEvent.actor_id == user_id, AuditEvent.subject_id == user_id))
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list((await db.scalars(keyset(query, AuditEvent.id, page, descending=True))).all())
