"""Administration of other accounts: role changes, disabling, display names."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.audit import Action, record
from server.auth.profile import MAX_DISPLAY_NAME
from server.auth.views import UserView
from server.core.context import Caller
from server.core.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from server.core.ids import parse_id


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise PermissionDenied("this needs the admin role", "ADMIN_REQUIRED")


class Admin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def update_user(
        self,
        admin: Caller,
        user_id: str,
        role: str | None,
        disabled: bool | None,
        display_name: str | None,
    ) -> UserView:
        require_admin(admin)
        if display_name is not None and "\x00" in display_name:
            raise InvalidArgument.of(
                [FieldViolation("user.display_name", "must not contain NUL characters")]
            )
        uid = parse_id(user_id)
        if uid is None:
            raise NotFound("user not found", "USER_NOT_FOUND")
        if uid == admin.user_id and (role is not None or disabled is not None):
            raise FailedPrecondition(
                "admins cannot change their own role or disable themselves", "CANNOT_MODIFY_SELF"
            )
        async with self._sessions() as db, db.begin():
            user = await store.user_by_id(db, uid, lock=True)
            if user is None:
                raise NotFound("user not found", "USER_NOT_FOUND")
            actor = admin.user_id
            if role is not None and role != user.role:
                record(
                    db,
                    Action.ROLE_CHANGED,
                    actor_id=actor,
                    subject_id=user.id,
                    target=user.email,
                    details={"from": user.role, "to": role},
                )
                user.role = role
            if disabled is not None and disabled != user.disabled:
                user.disabled = disabled
                if disabled:
                    # Enabling the account again must not revive what it had: its users
                    # sign in anew and make new keys.
                    await store.revoke_user_sessions(db, user.id, "user_disabled")
                    await store.revoke_user_api_keys(db, user.id)
                record(
                    db,
                    Action.USER_DISABLED if disabled else Action.USER_ENABLED,
                    actor_id=actor,
                    subject_id=user.id,
                    target=user.email,
                )
            if display_name is not None:
                user.display_name = display_name.strip()[:MAX_DISPLAY_NAME]
            await db.flush()
            await db.refresh(user)
            return UserView.of(user)
