"""Users' fair shares: the server defaults with an admin's overrides (table user_limits).

`UserLimitsBook` is the `LimitsPort` every service reads a user's limits through. Each
server keeps a user's limits for `user_limits_cache_seconds` (streams read them on every
call); an override made here takes effect on this server at once and on the others
within that time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.admin import require_admin
from server.auth.audit import Action, record
from server.config import Settings
from server.core.context import Caller
from server.core.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Violations,
)
from server.core.ids import parse_id
from server.core.limits import LIMIT_NAMES, UserLimits
from server.db.limit_models import UserLimitsRow

# Kept small: an entry is one user's limits, refreshed after the cache time anyway.
_CACHE_MAX_USERS = 100_000


@dataclass(frozen=True)
class LimitsView:
    user_id: uuid.UUID
    limits: UserLimits


def _user_not_found() -> NotFound:
    return NotFound("user not found", "USER_NOT_FOUND")


class UserLimitsBook:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._defaults = UserLimits.defaults(settings)
        self._ttl = settings.user_limits_cache_seconds
        self._cache: dict[uuid.UUID, tuple[float, UserLimits]] = {}

    # --- the port ---------------------------------------------------------------------

    async def limits_of(self, user_id: uuid.UUID) -> UserLimits:
        now = time.monotonic()
        hit = self._cache.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self._sessions() as db:
            overrides = await db.scalar(
                select(UserLimitsRow.overrides).where(UserLimitsRow.user_id == user_id)
            )
        limits = self._apply(overrides or {})
        self._remember(user_id, limits, now)
        return limits

    # --- the RPCs ---------------------------------------------------------------------

    async def get(self, caller: Caller, user_id: str) -> LimitsView:
        """`user_id` "me" is the caller; another user's limits only for an admin."""
        if not user_id:
            raise InvalidArgument.of([FieldViolation("user_id", 'is required (or "me")')])
        uid = caller.user_id if user_id == "me" else parse_id(user_id)
        if uid != caller.user_id:
            if not caller.is_admin:
                raise PermissionDenied("only admins can read other users' limits", "ADMIN_REQUIRED")
            if uid is None:
                raise _user_not_found()
            async with self._sessions() as db:
                if await store.user_by_id(db, uid) is None:
                    raise _user_not_found()
        assert uid is not None
        self._cache.pop(uid, None)  # read fresh: this is where an admin checks a change
        return LimitsView(uid, await self.limits_of(uid))

    async def update(self, admin: Caller, user_id: str, changes: Mapping[str, int]) -> LimitsView:
        """Sets the limits in `changes` (a `UserLimits` field name each); 0 removes the
        override, so the server default applies again."""
        require_admin(admin)
        violations = Violations()
        for name, value in changes.items():
            if name not in LIMIT_NAMES:
                violations.add("update_mask", f"{name} is not a limit")
            elif value < 0:
                violations.add(f"limits.{name}", "must not be negative (0: the server default)")
        violations.raise_if_any()
        uid = admin.user_id if user_id == "me" else parse_id(user_id)
        if uid is None:
            raise _user_not_found()
        async with self._sessions() as db, db.begin():
            user = await store.user_by_id(db, uid)
            if user is None:
                raise _user_not_found()
            current = await db.scalar(
                select(UserLimitsRow.overrides)
                .where(UserLimitsRow.user_id == uid)
                .with_for_update()
            )
            overrides: dict[str, Any] = dict(current or {})
            for name, value in changes.items():
                if value:
                    overrides[name] = value
                else:
                    overrides.pop(name, None)
            await db.execute(
                insert(UserLimitsRow)
                .values(user_id=uid, overrides=overrides)
                .on_conflict_do_update(
                    index_elements=[UserLimitsRow.user_id],
                    set_={"overrides": overrides, "update_time": func.now()},
                )
            )
            record(
                db,
                Action.LIMITS_CHANGED,
                actor_id=admin.user_id,
                subject_id=uid,
                target=user.email,
                details={name: str(value) for name, value in changes.items()},
            )
        limits = self._apply(overrides)
        self._remember(uid, limits, time.monotonic())
        return LimitsView(uid, limits)

    # --- helpers ----------------------------------------------------------------------

    def _apply(self, overrides: Mapping[str, Any]) -> UserLimits:
        known = {
            name: int(value)
            for name, value in overrides.items()
            if name in LIMIT_NAMES and isinstance(value, int) and value > 0
        }
        if not known:
            return self._defaults
        return replace(self._defaults, **known, overridden=frozenset(known))

    def _remember(self, user_id: uuid.UUID, limits: UserLimits, now: float) -> None:
        if self._ttl <= 0:
            return
        if len(self._cache) >= _CACHE_MAX_USERS:
            self._cache = {uid: hit for uid, hit in self._cache.items() if hit[0] > now}
            if len(self._cache) >= _CACHE_MAX_USERS:
                self._cache.clear()
        self._cache[user_id] = (now + self._ttl, limits)
