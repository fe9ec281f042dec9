"""Changing a password (knowing the current one) and resetting it (with a mailed token).
Either ends the user's other sessions."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import mailed, store
from server.auth.audit import Action, record
from server.auth.hashing import PasswordHasher, check_password
from server.auth.mail import MailSender
from server.auth.profile import account_gone
from server.core.context import Caller
from server.core.emails import normalise_email
from server.core.errors import FieldViolation, InvalidArgument, PermissionDenied, Violations


class Passwords:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hasher: PasswordHasher,
        mail: MailSender,
    ) -> None:
        self._sessions = sessions
        self._hasher = hasher
        self._mail = mail

    async def change(self, caller: Caller, current: str, new: str) -> None:
        violations = Violations()
        violations.check(bool(current), "current_password", "is required")
        check_password(violations, "new_password", new)
        violations.raise_if_any()
        async with self._sessions() as db:
            user = await store.user_by_id(db, caller.user_id)
        if user is None:
            raise account_gone()
        if not await self._hasher.verify(current, user.password_hash):
            raise PermissionDenied("the current password is incorrect", "WRONG_PASSWORD")
        new_hash = await self._hasher.hash(new)
        keep = uuid.UUID(caller.session_id) if caller.session_id else None
        async with self._sessions() as db, db.begin():
            locked = await store.user_by_id(db, user.id, lock=True)
            assert locked is not None
            locked.password_hash = new_hash
            await store.revoke_user_sessions(db, user.id, "password_changed", keep=keep)
            record(db, Action.PASSWORD_CHANGED, actor_id=user.id, subject_id=user.id)

    async def request_reset(self, email: str) -> None:
        """Answers the same whether or not the address has an account."""
        normalised = normalise_email(email)
        if normalised is None:
            raise InvalidArgument.of([FieldViolation("email", "is not a valid email address")])
        async with self._sessions() as db, db.begin():
            user = await store.user_by_email(db, normalised)
            record(
                db,
                Action.PASSWORD_RESET_REQUESTED,
                subject_id=user.id if user else None,
                target=normalised,
            )
            if user is None or user.disabled:
                return
            mailed.issue(db, mailed.PASSWORD_RESET, user.id, user.email)
        self._mail.wake()

    async def reset(self, token: str, new_password: str) -> None:
        violations = Violations()
        violations.check(bool(token), "token", "is required")
        check_password(violations, "new_password", new_password)
        violations.raise_if_any()
        new_hash = await self._hasher.hash(new_password)
        async with self._sessions() as db, db.begin():
            user_id = await mailed.redeem(db, mailed.PASSWORD_RESET, token)
            user = await store.user_by_id(db, user_id, lock=True)
            assert user is not None
            user.password_hash = new_hash
            await store.revoke_user_sessions(db, user.id, "password_reset")
            record(db, Action.PASSWORD_RESET, actor_id=user.id, subject_id=user.id)
