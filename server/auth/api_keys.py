"""API keys: long-lived credentials a signed-in user creates for scripts, shown once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.audit import Action, record
from server.auth.tokens import new_api_key
from server.auth.views import ApiKeyView, CreatedApiKey
from server.core.context import Caller
from server.core.errors import NotFound, PermissionDenied, Violations
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.core.scopes import ADMIN, requested_scopes
from server.core.timestamps import utcnow
from server.db.models import ApiKey

MAX_API_KEY_NAME = 100


class ApiKeys:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self, caller: Caller, name: str, expire_time: datetime | None, scopes: list[str]
    ) -> CreatedApiKey:
        granted = requested_scopes(scopes)
        if ADMIN in granted and not caller.is_admin:
            raise PermissionDenied("only an admin's key may have the admin scope", "ADMIN_REQUIRED")
        violations = Violations()
        violations.check(
            len(name) <= MAX_API_KEY_NAME, "name", f"must be at most {MAX_API_KEY_NAME} characters"
        )
        violations.check("\x00" not in name, "name", "must not contain NUL characters")
        violations.check(
            expire_time is None or expire_time > utcnow(), "expire_time", "must be in the future"
        )
        violations.raise_if_any()
        if caller.api_key_id is not None:
            raise PermissionDenied(
                "API keys cannot create API keys; sign in", "API_KEY_NOT_ALLOWED"
            )
        created = new_api_key()
        async with self._sessions() as db, db.begin():
            key = ApiKey(
                user_id=caller.user_id,
                name=name.strip(),
                prefix=created.prefix,
                secret_hash=created.secret_hash,
                expire_time=expire_time,
                scopes=list(granted),
            )
            db.add(key)
            await db.flush()
            await db.refresh(key)
            record(
                db,
                Action.API_KEY_CREATED,
                actor_id=key.user_id,
                subject_id=key.user_id,
                target=str(key.id),
                details={"prefix": key.prefix, "scopes": list(granted)},
            )
        return CreatedApiKey(ApiKeyView.of(key), created.secret)

    async def list(self, caller: Caller, page: Page, show_revoked: bool) -> Listed[ApiKeyView]:
        """The caller's keys, newest first; revoked ones only when asked for."""
        async with self._sessions() as db:
            rows = await store.list_api_keys(db, caller.user_id, page, show_revoked)
        return listed([ApiKeyView.of(row) for row in rows], page, lambda k: [k.id])

    async def revoke(self, caller: Caller, api_key_id: str) -> None:
        kid = parse_id(api_key_id)
        async with self._sessions() as db, db.begin():
            key = await db.get(ApiKey, kid, with_for_update=True) if kid else None
            if key is None or key.user_id != caller.user_id or key.revoke_time is not None:
                raise NotFound("API key not found", "API_KEY_NOT_FOUND")
            key.revoke_time = utcnow()
            record(
                db,
                Action.API_KEY_REVOKED,
                actor_id=key.user_id,
                subject_id=key.user_id,
                target=str(key.id),
            )
