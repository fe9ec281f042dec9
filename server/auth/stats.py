"""GetSystemStats: counts across the whole system, in one round trip."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.agent_models import Conversation, DailyUsage, MessageRow
from server.db.artifact_models import ArtifactRow
from server.db.models import Project, User
from server.db.sandbox_models import LIVE_SANDBOX_STATES, SandboxRow


@dataclass(frozen=True)
class SystemCounts:
    users: int
    disabled_users: int
    projects: int
    conversations: int
    messages: int
    live_sandboxes: int
    artifacts: int
    input_tokens: int
    output_tokens: int


def _count(model: type) -> ScalarSelect[int]:
    return select(func.count()).select_from(model).scalar_subquery()


async def system_counts(db: AsyncSession) -> SystemCounts:
    live = (
        select(func.count())
        .select_from(SandboxRow)
        .where(SandboxRow.state.in_(LIVE_SANDBOX_STATES))
        .scalar_subquery()
    )
    tokens_in = select(func.coalesce(func.sum(DailyUsage.input_tokens), 0)).scalar_subquery()
    tokens_out = select(func.coalesce(func.sum(DailyUsage.output_tokens), 0)).scalar_subquery()
    disabled = select(func.count()).select_from(User).where(User.disabled).scalar_subquery()
    row = (
        await db.execute(
            select(
                _count(User),
                disabled,
                _count(Project),
                _count(Conversation),
                _count(MessageRow),
                live,
                _count(ArtifactRow),
                tokens_in,
                tokens_out,
            )
        )
    ).one()
    return SystemCounts(*(int(value) for value in row))
