"""Queries of the model catalog tables: providers as admins switched them, and the models
found by asking the providers (server/db/catalog_models.py)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Interval, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.catalog_models import DiscoveredModelRow, ModelProviderRow


async def switched_off(db: AsyncSession) -> list[str]:
    rows = await db.scalars(
        select(ModelProviderRow.name).where(ModelProviderRow.enabled.is_(False))
    )
    return list(rows)


async def provider_rows(db: AsyncSession) -> dict[str, ModelProviderRow]:
    rows = await db.scalars(select(ModelProviderRow))
    return {row.name: row for row in rows}


async def switch(
    db: AsyncSession, name: str, enabled: bool, user_id: uuid.UUID
) -> ModelProviderRow:
    """Sets whether `name` is on, by whom and when (now); returns its row."""
    values = insert(ModelProviderRow).values(
        name=name, enabled=enabled, update_user_id=user_id, update_time=func.now()
    )
    statement = values.on_conflict_do_update(
        index_elements=[ModelProviderRow.name],
        set_={
            "enabled": values.excluded.enabled,
            "update_user_id": values.excluded.update_user_id,
            "update_time": values.excluded.update_time,
        },
    ).returning(ModelProviderRow)
    row: ModelProviderRow = (await db.scalars(statement)).one()
    return row


async def claim_discovery(db: AsyncSession, name: str, min_interval_seconds: float) -> bool:
    """Whether this server may ask `name` for its models now: true for at most one caller
    (on any server) per `min_interval_seconds`, whose claim is recorded at once."""
    interval = literal(timedelta(seconds=min_interval_seconds), Interval())
    values = insert(ModelProviderRow).values(name=name, discover_time=func.now())
    statement = values.on_conflict_do_update(
        index_elements=[ModelProviderRow.name],
        set_={"discover_time": func.now()},
        where=ModelProviderRow.discover_time.is_(None)
        | (ModelProviderRow.discover_time <= func.now() - interval),
    ).returning(ModelProviderRow.name)
    claimed = await db.execute(statement)
    return claimed.first() is not None


async def replace_discovered(db: AsyncSession, provider: str, names: Sequence[str]) -> None:
    """`names` become the models found at `provider` (those gone from it are forgotten)."""
    await db.execute(
        delete(DiscoveredModelRow).where(
            DiscoveredModelRow.provider == provider, DiscoveredModelRow.name.not_in(names)
        )
    )
    if names:
        statement = insert(DiscoveredModelRow).values(
            [{"provider": provider, "name": name} for name in names]
        )
        await db.execute(
            statement.on_conflict_do_update(
                index_elements=[DiscoveredModelRow.provider, DiscoveredModelRow.name],
                set_={"discover_time": func.now()},
            )
        )


async def discovered(db: AsyncSession) -> dict[str, list[str]]:
    """Provider name -> the model names found there, by name."""
    rows = await db.execute(
        select(DiscoveredModelRow.provider, DiscoveredModelRow.name).order_by(
            DiscoveredModelRow.provider, DiscoveredModelRow.name
        )
    )
    found: dict[str, list[str]] = defaultdict(list)
    for provider, name in rows:
        found[provider].append(name)
    return dict(found)
