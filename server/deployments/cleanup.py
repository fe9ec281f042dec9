"""What deleting a project does to its deployments: the rows (and its targets, with their
sealed tokens) go with the project; what its deployments published is removed afterwards,
in the background, since the project's owners can no longer reach it through Forge once the
targets are gone. A removal that fails is logged (the site stays where it was published)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.hooks import AfterCommit
from server.core.sealing import KeyUnavailable
from server.db.deployment_models import DeploymentRow, DeployTargetRow
from server.deployments.deploy_targets import DeployTargets
from server.deployments.runner import DeploymentRunner
from server.deployments.targets.base import DeployTarget, Handle


class ProjectDeploymentsCleanup:
    def __init__(self, targets: DeployTargets, runner: DeploymentRunner) -> None:
        self._targets = targets
        self._runner = runner

    async def __call__(self, db: AsyncSession, project_id: uuid.UUID) -> AfterCommit | None:
        query = (
            select(DeploymentRow.handle, DeployTargetRow)
            .join(DeployTargetRow, DeployTargetRow.id == DeploymentRow.target_id)
            .where(DeploymentRow.project_id == project_id, DeploymentRow.handle.is_not(None))
        )
        published: list[tuple[DeployTarget, Handle]] = []
        for handle, target_row in (await db.execute(query)).all():
            try:
                published.append((self._targets.target_of(target_row), handle))
            except KeyUnavailable:  # its token can no longer be opened: nothing to do
                continue
        if not published:
            return None

        async def remove_published() -> None:
            self._runner.remove_in_background(published)

        return remove_published
