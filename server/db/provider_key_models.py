"""Users' and projects' own provider keys, encrypted at rest (server/agents/provider_keys.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from server.core.ids import new_id
from server.db.models import Base


class ProviderKeyRow(Base):
    """A key of a user's own (user_id) or of a project (project_id), exactly one of them;
    one per owner and provider. Deleting the user or project deletes its keys."""

    __tablename__ = "provider_keys"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (project_id IS NULL)", name="one_owner"),
        UniqueConstraint("user_id", "provider"),
        UniqueConstraint("project_id", "provider"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE")
    )
    display_name: Mapped[str] = mapped_column(String(100), default="")
    key_prefix: Mapped[str] = mapped_column(String(16))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    encryption_key_id: Mapped[str] = mapped_column(String(16))
    """Which key-encryption key sealed it (server/core/sealing.py key_id_of)."""
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    last_use_time: Mapped[datetime | None]
