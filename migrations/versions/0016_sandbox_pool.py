"""Shared warm pool: containers started ahead of demand on each Docker host, claimable by
any server process (the host's duty holder refills it)

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_pool",
        sa.Column("container_id", sa.String(128), primary_key=True),
        sa.Column("sandbox_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("host_id", sa.String(200), nullable=False),
        sa.Column("runtime", sa.String(32), nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("limits_key", sa.String(100), nullable=False),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index(
        "ix_sandbox_pool_host_id_runtime_create_time",
        "sandbox_pool",
        ["host_id", "runtime", "create_time"],
    )


def downgrade() -> None:
    op.drop_index("ix_sandbox_pool_host_id_runtime_create_time", table_name="sandbox_pool")
    op.drop_table("sandbox_pool")
