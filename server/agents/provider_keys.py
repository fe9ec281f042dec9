"""Users' and projects' own provider keys (bring your own key): storing, listing, deleting.

A user stores a key of their own (any signed-in user), a project's owners one for the
project; one key per owner and provider (replacing one is delete, then create). The key is
sealed at rest (server/core/sealing.py), shown back only as its first characters, and used for the
owner's calls in preference to the server's key (provider_key_use.py). Creating and
deleting are audit-logged in the same transaction; the key itself is never logged, stored
in the clear, or put in an error message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.key_binding import RowBinding
from server.core.access import ProjectRole, project_not_found, require_project_role
from server.core.audit_log import record_audit_event
from server.core.context import Caller
from server.core.errors import AlreadyExists, NotFound, Violations
from server.core.ids import new_id, parse_id
from server.core.pagination import Listed, Page, keyset, listed
from server.core.sealing import KeySealer
from server.db.engine import reading
from server.db.provider_key_models import ProviderKeyRow

PROVIDER_KEY_EXISTS = "PROVIDER_KEY_EXISTS"
PROVIDER_KEY_NOT_FOUND = "PROVIDER_KEY_NOT_FOUND"
MIN_KEY_CHARS = 8
MAX_KEY_CHARS = 512
MAX_DISPLAY_NAME = 100
PREFIX_CHARS = 8


@dataclass(frozen=True, slots=True)
class ProviderKeyDraft:
    provider: str
    api_key: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class ProviderKeyView:
    id: uuid.UUID
    provider: str
    user_id: uuid.UUID | None
    project_id: uuid.UUID | None
    display_name: str
    key_prefix: str
    creator_id: uuid.UUID | None
    create_time: datetime
    last_use_time: datetime | None

    @classmethod
    def of(cls, row: ProviderKeyRow) -> ProviderKeyView:
        return cls(
            id=row.id,
            provider=row.provider,
            user_id=row.user_id,
            project_id=row.project_id,
            display_name=row.display_name,
            key_prefix=row.key_prefix,
            creator_id=row.creator_id,
            create_time=row.create_time,
            last_use_time=row.last_use_time,
        )


def key_prefix(api_key: str) -> str:
    """The first few characters: at most PREFIX_CHARS, and never more than a third."""
    return api_key[: min(PREFIX_CHARS, len(api_key) // 3)]


def provider_key_not_found() -> NotFound:
    return NotFound("provider key not found", PROVIDER_KEY_NOT_FOUND)


def _checked(draft: ProviderKeyDraft, key_takers: Iterable[str]) -> ProviderKeyDraft:
    takers = sorted(key_takers)
    draft = ProviderKeyDraft(draft.provider.strip(), draft.api_key, draft.display_name.strip())
    violations = Violations()
    if not draft.provider:
        violations.add("provider_key.provider", "is required")
    elif draft.provider not in takers:
        violations.add(
            "provider_key.provider",
            f"must be a provider that takes keys: {', '.join(takers)}",
        )
    key = draft.api_key
    if not key:
        violations.add("provider_key.api_key", "is required")
    elif not MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS or not all(
        "!" <= char <= "~" for char in key
    ):
        # Says what is wrong with the key, never the key.
        violations.add(
            "provider_key.api_key",
            f"must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} printable ASCII characters without spaces",
        )
    if len(draft.display_name) > MAX_DISPLAY_NAME:
        violations.add(
            "provider_key.display_name", f"must be at most {MAX_DISPLAY_NAME} characters"
        )
    elif any(not char.isprintable() for char in draft.display_name):
        violations.add("provider_key.display_name", "must not contain control characters")
    violations.raise_if_any()
    return draft


class ProviderKeys:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sealer: KeySealer,
        key_takers: frozenset[str],
    ) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._key_takers = key_takers
        """Providers a key can be stored for (anthropic, gemini, the endpoints)."""

    async def _owner(
        self, db: AsyncSession, caller: Caller, project_id: str, needed: ProjectRole
    ) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        """(user_id, project_id) of the keys meant: the caller's own, or the project's once
        the caller holds `needed` in it."""
        if not project_id:
            return caller.user_id, None
        pid = parse_id(project_id)
        if pid is None:
            raise project_not_found()
        await require_project_role(db, caller, pid, needed)
        return None, pid

    async def create(
        self, caller: Caller, project_id: str, draft: ProviderKeyDraft
    ) -> ProviderKeyView:
        draft = _checked(draft, self._key_takers)
        key_id = new_id()
        prefix = key_prefix(draft.api_key)
        async with self._sessions() as db, db.begin():
            user_id, pid = await self._owner(db, caller, project_id, ProjectRole.OWNER)
            binding = RowBinding(key_id, user_id, pid, draft.provider)
            sealed = self._sealer.seal(binding, draft.api_key)
            values = {
                "id": key_id,
                "provider": draft.provider,
                "user_id": user_id,
                "project_id": pid,
                "display_name": draft.display_name,
                "key_prefix": prefix,
                "ciphertext": sealed.ciphertext,
                "encryption_key_id": sealed.key_id,
                "creator_id": caller.user_id,
            }
            statement = (
                insert(ProviderKeyRow)
                .values(**values)
                .on_conflict_do_nothing()
                .returning(ProviderKeyRow.create_time)
            )
            created: datetime | None = await db.scalar(statement)
            if created is None:
                whose = "this project" if pid else "you"
                raise AlreadyExists(
                    f"{whose} already have a {draft.provider} key; delete it to store another",
                    PROVIDER_KEY_EXISTS,
                    metadata={"provider": draft.provider},
                )
            record_audit_event(
                db,
                "provider_key_created",
                actor_id=caller.user_id,
                subject_id=user_id,
                target=f"providerKeys/{key_id}",
                details={"provider": draft.provider, "project_id": str(pid) if pid else ""},
            )
        return ProviderKeyView(
            id=key_id,
            provider=draft.provider,
            user_id=user_id,
            project_id=pid,
            display_name=draft.display_name,
            key_prefix=prefix,
            creator_id=caller.user_id,
            create_time=created,
            last_use_time=None,
        )

    async def list(self, caller: Caller, project_id: str, page: Page) -> Listed[ProviderKeyView]:
        async with reading(self._sessions) as db:
            user_id, pid = await self._owner(db, caller, project_id, ProjectRole.VIEWER)
            query = select(ProviderKeyRow).where(
                ProviderKeyRow.user_id == user_id
                if user_id is not None
                else ProviderKeyRow.project_id == pid
            )
            rows = list((await db.scalars(keyset(query, ProviderKeyRow.id, page))).all())
        views = [ProviderKeyView.of(row) for row in rows]
        return listed(views, page, lambda view: [view.id])

    async def delete(self, caller: Caller, project_id: str, provider_key_id: str) -> None:
        checks = Violations()
        checks.check(bool(provider_key_id), "provider_key_id", "is required")
        checks.raise_if_any()
        key_id = parse_id(provider_key_id)
        async with self._sessions() as db, db.begin():
            user_id, pid = await self._owner(db, caller, project_id, ProjectRole.OWNER)
            if key_id is None:
                raise provider_key_not_found()
            owned = (
                ProviderKeyRow.user_id == user_id
                if user_id is not None
                else ProviderKeyRow.project_id == pid
            )
            provider = await db.scalar(
                delete(ProviderKeyRow)
                .where(ProviderKeyRow.id == key_id, owned)
                .returning(ProviderKeyRow.provider)
            )
            if provider is None:
                raise provider_key_not_found()
            record_audit_event(
                db,
                "provider_key_deleted",
                actor_id=caller.user_id,
                subject_id=user_id,
                target=f"providerKeys/{key_id}",
                details={"provider": provider, "project_id": str(pid) if pid else ""},
            )
