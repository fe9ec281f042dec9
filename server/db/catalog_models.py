"""Model catalog tables: model providers as admins switched them (and when each was last
asked for its models), and the models found by asking (ListModels `refresh`).

A provider without a row is on and has never been asked."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.models import Base


class ModelProviderRow(Base):
    __tablename__ = "model_providers"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    update_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    """The admin who last switched it (None: never switched, or the account is gone)."""
    update_time: Mapped[datetime | None]
    """When an admin last switched it."""
    discover_time: Mapped[datetime | None]
    """When a server last asked it for its models (at most one asks per interval)."""


class DiscoveredModelRow(Base):
    __tablename__ = "discovered_models"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    discover_time: Mapped[datetime] = mapped_column(server_default=func.now())
