"""fair shares: admin overrides of a user's limits, and the indexes the shares count with

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_limits",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("overrides", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_limits_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_limits")),
    )
    op.create_index(
        "ix_audit_events_register_peer_time",
        "audit_events",
        ["peer_address", "create_time"],
        postgresql_where=sa.text("action = 'register'"),
    )
    op.create_index(
        "ix_sandboxes_creator_live",
        "sandboxes",
        ["creator_id"],
        postgresql_where=sa.text("state IN ('creating', 'running', 'paused') AND NOT ephemeral"),
    )
    op.create_index(
        "ix_artifact_versions_creator_size",
        "artifact_versions",
        ["creator_id", "size_bytes"],
    )


def downgrade() -> None:
    op.drop_index("ix_artifact_versions_creator_size", table_name="artifact_versions")
    op.drop_index("ix_sandboxes_creator_live", table_name="sandboxes")
    op.drop_index("ix_audit_events_register_peer_time", table_name="audit_events")
    op.drop_table("user_limits")
