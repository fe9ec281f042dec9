"""GetSystemStats: counts across the whole system, in one round trip.

Auth counts its users; every other service offers named counters over its own tables
(`Offers.system_counters`), and all of them run as one SELECT of scalar subqueries."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import User

SystemCounts = Mapping[str, int]
"""Counter name → value; a counter no module offers reads as absent."""


def own_counters() -> dict[str, ScalarSelect[int]]:
    return {
        "users": select(func.count()).select_from(User).scalar_subquery(),
        "disabled_users": select(func.count())
        .select_from(User)
        .where(User.disabled)
        .scalar_subquery(),
    }


async def system_counts(db: AsyncSession, offered: Mapping[str, ScalarSelect[int]]) -> SystemCounts:
    counters = {**offered, **own_counters()}
    names = list(counters)
    row = (await db.execute(select(*(counters[name] for name in names)))).one()
    return {name: int(value) for name, value in zip(names, row, strict=True)}
