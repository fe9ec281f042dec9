"""projects: creators of projects and tasks, members' update time

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "project_members",
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    for table in ("projects", "tasks"):
        op.add_column(table, sa.Column("creator_id", sa.UUID(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_{table}_creator_id_users"),
            table,
            "users",
            ["creator_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    for table in ("tasks", "projects"):
        op.drop_constraint(op.f(f"fk_{table}_creator_id_users"), table, type_="foreignkey")
        op.drop_column(table, "creator_id")
    op.drop_column("project_members", "update_time")
