"""The signed-in user's own account: read it, change its display name."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.audit import Action, record
from server.auth.views import UserView
from server.core.caller_state import caller_from_state
from server.core.context import CallContext, Caller
from server.core.errors import Unauthenticated, Violations

MAX_DISPLAY_NAME = 100


def check_display_name(violations: Violations, field: str, name: str) -> None:
    violations.check(
        len(name) <= MAX_DISPLAY_NAME, field, f"must be at most {MAX_DISPLAY_NAME} characters"
    )
    # PostgreSQL text cannot hold NUL: storing one would fail the call.
    violations.check("\x00" not in name, field, "must not contain NUL characters")


def account_gone() -> Unauthenticated:
    return Unauthenticated("the account no longer exists", "USER_NOT_FOUND")


class Profile:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def current_user(self, call: CallContext) -> UserView:
        """The caller's profile; its one read also reads the account state of a caller the
        interceptor left unconfirmed (core/caller_state.py) and confirms it."""
        unconfirmed = call.unconfirmed
        if unconfirmed is None:
            user_id, session_id = call.require_caller().user_id, None
        else:
            user_id, session_id = unconfirmed.user_id, unconfirmed.session_id
        found = await store.profile_with_caller_state(self._sessions, user_id, session_id)
        if unconfirmed is not None:
            call.confirm(caller_from_state(user_id, session_id, found[0] if found else None))
        if found is None:
            raise account_gone()
        return UserView.from_columns(found[1])

    async def update(self, caller: Caller, display_name: str | None) -> UserView:
        if display_name is not None:
            violations = Violations()
            check_display_name(violations, "user.display_name", display_name)
            violations.raise_if_any()
        async with self._sessions() as db, db.begin():
            user = await store.user_by_id(db, caller.user_id, lock=True)
            if user is None:
                raise account_gone()
            if display_name is not None:
                user.display_name = display_name.strip()
                record(db, Action.PROFILE_UPDATED, actor_id=user.id, subject_id=user.id)
            await db.flush()
            await db.refresh(user)
            return UserView.of(user)
