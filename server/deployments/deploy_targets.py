"""A project's deploy targets: where its sites are published, with the credentials to do so.

Owners register and delete targets (they hold a token to outside hosting); members read them.
The token is sealed at rest (server/core/sealing.py, bound to the target's row), shown back
only as its last characters, and opened only to build the target that publishes. Creating
and deleting are audit-logged in the same transaction; the token itself is never logged,
stored in the clear, or put in an error message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.access import ProjectRole, project_not_found, require_project_role
from server.core.audit_log import record_audit_event
from server.core.context import Caller
from server.core.errors import FailedPrecondition, NotFound
from server.core.ids import new_id, parse_id
from server.core.pagination import Listed, Page, listed
from server.core.sealing import KeySealer, Sealed
from server.db.deployment_models import DeployTargetRow
from server.db.engine import reading
from server.deployments import store
from server.deployments.target_config import TargetDraft, checked, make_target, token_hint
from server.deployments.targets.base import DeployTarget
from server.deployments.views import TargetKind, TargetView

DEPLOY_TARGET_NOT_FOUND = "DEPLOY_TARGET_NOT_FOUND"
DEPLOY_TARGET_IN_USE = "DEPLOY_TARGET_IN_USE"


def target_not_found() -> NotFound:
    return NotFound("deploy target not found", DEPLOY_TARGET_NOT_FOUND)


@dataclass(frozen=True, slots=True)
class TargetBinding:
    """What a target's sealed token is bound to: its row."""

    target_id: uuid.UUID
    project_id: uuid.UUID
    kind: str

    def associated_data(self) -> bytes:
        return f"forge deploy target v1\n{self.target_id}\n{self.project_id}\n{self.kind}".encode()


async def target_for(
    db: AsyncSession, caller: Caller, target_id: uuid.UUID, needed: ProjectRole
) -> DeployTargetRow:
    """The target, if the caller holds `needed` in its project; the same NOT_FOUND as for a
    target that does not exist otherwise."""
    row = await store.get_target(db, target_id)
    if row is None:
        raise target_not_found()
    try:
        await require_project_role(db, caller, row.project_id, needed)
    except NotFound:
        raise target_not_found() from None
    return row


def checked_target_id(value: str) -> uuid.UUID:
    parsed = parse_id(value)
    if parsed is None:
        raise target_not_found()
    return parsed


class DeployTargets:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], sealer: KeySealer, settings: Settings
    ) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._settings = settings

    async def create(self, caller: Caller, project_id: str, draft: TargetDraft) -> TargetView:
        pid = parse_id(project_id)
        if pid is None:
            raise project_not_found()
        draft = checked(draft, self._settings)
        assert draft.kind is not None
        target_id = new_id()
        sealed = (
            self._sealer.seal(TargetBinding(target_id, pid, draft.kind.value), draft.token)
            if draft.token
            else None
        )
        async with self._sessions() as db, db.begin():
            await require_project_role(db, caller, pid, ProjectRole.OWNER)
            row = DeployTargetRow(
                id=target_id,
                project_id=pid,
                display_name=draft.display_name,
                kind=draft.kind.value,
                config=dict(draft.config),
                ciphertext=sealed.ciphertext if sealed else None,
                encryption_key_id=sealed.key_id if sealed else "",
                token_hint=token_hint(draft.token),
                creator_id=caller.user_id,
            )
            db.add(row)
            await db.flush()
            record_audit_event(
                db,
                "deploy_target_created",
                actor_id=caller.user_id,
                target=f"deployTargets/{target_id}",
                details={"project_id": str(pid), "kind": draft.kind.value},
            )
        return TargetView.of(row)

    async def get(self, caller: Caller, target_id: str) -> TargetView:
        async with reading(self._sessions) as db:
            row = await target_for(db, caller, checked_target_id(target_id), ProjectRole.VIEWER)
            return TargetView.of(row)

    async def list(self, caller: Caller, project_id: str, page: Page) -> Listed[TargetView]:
        pid = parse_id(project_id)
        if pid is None:
            raise project_not_found()
        async with reading(self._sessions) as db:
            await require_project_role(db, caller, pid, ProjectRole.VIEWER)
            rows = await store.list_targets(db, pid, page)
            views = [TargetView.of(row) for row in rows]
        return listed(views, page, lambda view: [view.id])

    async def delete(self, caller: Caller, target_id: str) -> None:
        tid = checked_target_id(target_id)
        async with self._sessions() as db, db.begin():
            row = await target_for(db, caller, tid, ProjectRole.OWNER)
            await store.lock_target(db, tid)
            if await store.target_in_use(db, tid):
                raise FailedPrecondition(
                    "the target has deployments; delete them first (that also removes what "
                    "they published)",
                    DEPLOY_TARGET_IN_USE,
                )
            await db.delete(row)
            record_audit_event(
                db,
                "deploy_target_deleted",
                actor_id=caller.user_id,
                target=f"deployTargets/{tid}",
                details={"project_id": str(row.project_id), "kind": row.kind},
            )

    def target_of(self, row: DeployTargetRow) -> DeployTarget:
        """The live target that publishes to `row` (its token opened for it)."""
        token = ""
        if row.ciphertext is not None:
            binding = TargetBinding(row.id, row.project_id, row.kind)
            token = self._sealer.open(binding, Sealed(row.ciphertext, row.encryption_key_id))
        return make_target(TargetKind(row.kind), row.config, token, self._settings)
