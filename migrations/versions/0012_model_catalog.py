"""Providers switched on and off by admins, discovered models, and usage cost

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_providers",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("update_user_id", sa.UUID(), nullable=True),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("discover_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["update_user_id"],
            ["users.id"],
            name=op.f("fk_model_providers_update_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_model_providers")),
    )
    op.create_table(
        "discovered_models",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column(
            "discover_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("provider", "name", name=op.f("pk_discovered_models")),
    )
    # Existing usage keeps a cost of 0: its prices were never recorded.
    op.add_column(
        "token_usage_daily",
        sa.Column("cost_nanos", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("token_usage_daily", "cost_nanos")
    op.drop_table("discovered_models")
    op.drop_table("model_providers")
