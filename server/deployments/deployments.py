"""Deployments: publishing a build, or a tree or HTML artifact version, to one of the
project's targets.

Creating one checks everything that can be checked at once — the caller may edit in the
project, the target is the project's and its token opens, what is published is a site (a
succeeded build, or a version with an `index.html` at its root) within the size limits —
then records it QUEUED and hands it to the runner (runner.py), so a request that could never
succeed is refused with its reason instead of becoming a FAILED deployment. Watching reads
the row until it settles, so any process can serve a watch of a deployment another one
publishes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.access import ProjectRole, project_not_found, require_project_role
from server.core.audit_log import record_audit_event
from server.core.context import Caller
from server.core.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from server.core.hooks import Port
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.core.ports import ArtifactPort, SiteSource
from server.core.sealing import KeyUnavailable
from server.db.deployment_models import DeploymentRow
from server.db.engine import reading
from server.deployments import store
from server.deployments.deploy_targets import (
    DeployTargets,
    checked_target_id,
    target_not_found,
)
from server.deployments.runner import DeploymentRunner
from server.deployments.site import Site
from server.deployments.views import DeploymentView, Status

DEPLOYMENT_NOT_FOUND = "DEPLOYMENT_NOT_FOUND"
DEPLOYMENT_IN_PROGRESS = "DEPLOYMENT_IN_PROGRESS"
NOT_A_SITE = "NOT_A_SITE"
SITE_TOO_LARGE = "SITE_TOO_LARGE"
DEPLOY_TARGET_KEY_UNAVAILABLE = "DEPLOY_TARGET_KEY_UNAVAILABLE"
WATCH_POLL_SECONDS = 0.25


def deployment_not_found() -> NotFound:
    return NotFound("deployment not found", DEPLOYMENT_NOT_FOUND)


@dataclass(frozen=True)
class DeploymentDraft:
    """A CreateDeployment request's deployment, as ids in text (checked here)."""

    target_id: str
    build_id: str = ""
    artifact_id: str = ""
    artifact_version: int = 0


@dataclass(frozen=True)
class _Checked:
    project_id: uuid.UUID
    target_id: uuid.UUID
    source: SiteSource


def _checked(project_id: str, draft: DeploymentDraft) -> _Checked:
    pid = parse_id(project_id)
    if pid is None:
        raise project_not_found()
    violations = Violations()
    target_id = parse_id(draft.target_id)
    if not draft.target_id:
        violations.add("deployment.deploy_target_id", "is required")
    elif target_id is None:
        violations.add("deployment.deploy_target_id", "must be a deploy target id")
    artifact_id = parse_id(draft.artifact_id)
    build_id = parse_id(draft.build_id)
    if draft.build_id and draft.artifact_id:
        violations.add("deployment.build_id", "give a build_id or an artifact_id, not both")
    elif draft.build_id and build_id is None:
        violations.add("deployment.build_id", "must be a build id")
    elif not draft.build_id and not draft.artifact_id:
        violations.add("deployment", "a build_id or an artifact_id is required")
    elif draft.artifact_id and artifact_id is None:
        violations.add("deployment.artifact_id", "must be an artifact id")
    if draft.artifact_version < 0:
        violations.add("deployment.artifact_version", "must not be negative")
    violations.raise_if_any()
    assert target_id is not None
    source = SiteSource(artifact_id, draft.artifact_version, build_id)
    return _Checked(pid, target_id, source)


async def deployment_for(
    db: AsyncSession,
    caller: Caller,
    deployment_id: uuid.UUID,
    needed: ProjectRole,
    *,
    lock: bool = False,
) -> DeploymentRow:
    row = await store.get_deployment(db, deployment_id, lock=lock)
    if row is None:
        raise deployment_not_found()
    try:
        await require_project_role(db, caller, row.project_id, needed)
    except NotFound:
        raise deployment_not_found() from None
    return row


def checked_deployment_id(value: str) -> uuid.UUID:
    parsed = parse_id(value)
    if parsed is None:
        raise deployment_not_found()
    return parsed


class Deployments:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        targets: DeployTargets,
        artifacts: Port[ArtifactPort],
        runner: DeploymentRunner,
        settings: Settings,
    ) -> None:
        self._sessions = sessions
        self._targets = targets
        self._artifacts = artifacts
        self._runner = runner
        self._settings = settings

    async def create(
        self, caller: Caller, project_id: str, draft: DeploymentDraft
    ) -> DeploymentView:
        wanted = _checked(project_id, draft)
        async with reading(self._sessions) as db:
            await require_project_role(db, caller, wanted.project_id, ProjectRole.EDITOR)
            target_row = await store.get_target(db, wanted.target_id)
        if target_row is None or target_row.project_id != wanted.project_id:
            raise target_not_found()
        try:
            target = self._targets.target_of(target_row)
        except KeyUnavailable:
            raise FailedPrecondition(
                "the target's token can no longer be opened (its encryption key is gone); "
                "register the target again",
                DEPLOY_TARGET_KEY_UNAVAILABLE,
            ) from None
        files = await self._artifacts.get().site_files(caller, wanted.project_id, wanted.source)
        site = self._site(files.files)
        async with self._sessions() as db, db.begin():
            row = DeploymentRow(
                project_id=wanted.project_id,
                target_id=wanted.target_id,
                build_id=files.build_id,
                artifact_id=None if files.build_id else files.artifact_id,
                artifact_version=files.version,
                status=Status.QUEUED.value,
                file_count=len(site),
                creator_id=caller.user_id,
            )
            db.add(row)
            await db.flush()
            record_audit_event(
                db,
                "deployment_created",
                actor_id=caller.user_id,
                target=f"deployments/{row.id}",
                details={"project_id": str(row.project_id), "target_id": str(row.target_id)},
            )
        self._runner.submit(row.id, row.target_id, target, site)
        return DeploymentView.of(row)

    def _site(self, files: Mapping[str, tuple[bytes, str]]) -> Site:
        try:
            site = Site.of(files)
        except InvalidArgument as error:
            raise FailedPrecondition(
                f"the artifact version is not a static site ({error.message})", NOT_A_SITE
            ) from None
        settings = self._settings
        if len(site) > settings.deploy_max_site_files or (
            site.total_bytes > settings.deploy_max_site_bytes
        ):
            raise FailedPrecondition(
                f"a deployment sends at most {settings.deploy_max_site_files} files and "
                f"{settings.deploy_max_site_bytes} bytes; this site has {len(site)} files "
                f"and {site.total_bytes} bytes",
                SITE_TOO_LARGE,
            )
        return site

    async def get(self, caller: Caller, deployment_id: str) -> DeploymentView:
        async with reading(self._sessions) as db:
            did = checked_deployment_id(deployment_id)
            return DeploymentView.of(await deployment_for(db, caller, did, ProjectRole.VIEWER))

    async def list(
        self, caller: Caller, project_id: str, target_id: str, page: Page
    ) -> Listed[DeploymentView]:
        pid = parse_id(project_id)
        if pid is None:
            raise project_not_found()
        tid = checked_target_id(target_id) if target_id else None
        async with reading(self._sessions) as db:
            await require_project_role(db, caller, pid, ProjectRole.VIEWER)
            rows = await store.list_deployments(db, pid, tid, page)
            views = [DeploymentView.of(row) for row in rows]
        return listed(views, page, lambda view: [view.id])

    async def delete(self, caller: Caller, deployment_id: str) -> None:
        """Removes what it published (the target's own removal is idempotent), then the
        deployment; one in progress is refused (DEPLOYMENT_IN_PROGRESS)."""
        did = checked_deployment_id(deployment_id)
        async with reading(self._sessions) as db:
            row = await deployment_for(db, caller, did, ProjectRole.EDITOR)
            if not Status(row.status).settled:
                raise FailedPrecondition(
                    "the deployment is still being published; delete it once it is live or failed",
                    DEPLOYMENT_IN_PROGRESS,
                )
            target_row = await store.get_target(db, row.target_id)
        if row.handle is not None and target_row is not None:
            try:
                target = self._targets.target_of(target_row)
            except KeyUnavailable:
                raise FailedPrecondition(
                    "the target's token can no longer be opened, so what the deployment "
                    "published cannot be removed",
                    DEPLOY_TARGET_KEY_UNAVAILABLE,
                ) from None
            await target.remove(row.handle)
        async with self._sessions() as db, db.begin():
            locked = await store.get_deployment(db, did, lock=True)
            if locked is None:
                return
            await db.delete(locked)
            record_audit_event(
                db,
                "deployment_deleted",
                actor_id=caller.user_id,
                target=f"deployments/{did}",
                details={"project_id": str(locked.project_id), "url": locked.url},
            )

    async def watch(self, caller: Caller, deployment_id: str) -> AsyncIterator[DeploymentView]:
        """The deployment now, then each change, until it has settled."""
        did = checked_deployment_id(deployment_id)
        async with reading(self._sessions) as db:
            row = await deployment_for(db, caller, did, ProjectRole.VIEWER)
        last = DeploymentView.of(row)
        yield last
        while not last.status.settled:
            await asyncio.sleep(WATCH_POLL_SECONDS)
            async with reading(self._sessions) as db:
                current = await store.get_deployment(db, did)
            if current is None:
                raise deployment_not_found()
            view = DeploymentView.of(current)
            if view != last:
                last = view
                yield view
