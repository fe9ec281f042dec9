"""sandboxes and their executions

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "sandboxes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("creator_id", sa.UUID(), nullable=True),
        sa.Column("runtime", sa.String(length=32), nullable=False),
        sa.Column("image", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_message", sa.String(length=200), nullable=False),
        sa.Column("container_id", sa.String(length=128), nullable=True),
        sa.Column("warm", sa.Boolean(), nullable=False),
        sa.Column("ephemeral", sa.Boolean(), nullable=False),
        sa.Column("start_duration", sa.Interval(), nullable=True),
        sa.Column("limits", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column(
            "last_active_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False
        ),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('creating', 'running', 'paused', 'deleted', 'lost', 'failed')",
            name=op.f("ck_sandboxes_state"),
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_sandboxes_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_sandboxes_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandboxes")),
    )
    op.create_index(
        "ix_sandboxes_live",
        "sandboxes",
        ["last_active_time"],
        unique=False,
        postgresql_where="state IN ('creating', 'running', 'paused')",
    )
    op.create_index(
        "ix_sandboxes_project_id_create_time",
        "sandboxes",
        ["project_id", "create_time", "id"],
        unique=False,
    )
    op.create_table(
        "sandbox_executions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("sandbox_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("command", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("working_dir", sa.String(length=4096), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("process_group", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("signal", sa.Integer(), nullable=True),
        sa.Column("timed_out", sa.Boolean(), nullable=False),
        sa.Column("oom_killed", sa.Boolean(), nullable=False),
        sa.Column("output_truncated", sa.Boolean(), nullable=False),
        sa.Column("stdout_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stderr_bytes", sa.BigInteger(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Interval(), nullable=True),
        sa.CheckConstraint(
            "state IN ('running', 'finished', 'lost')", name=op.f("ck_sandbox_executions_state")
        ),
        sa.ForeignKeyConstraint(
            ["sandbox_id"],
            ["sandboxes.id"],
            name=op.f("fk_sandbox_executions_sandbox_id_sandboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sandbox_executions_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_executions")),
    )
    op.create_index(
        op.f("ix_sandbox_executions_sandbox_id"),
        "sandbox_executions",
        ["sandbox_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sandbox_executions_sandbox_id"), table_name="sandbox_executions")
    op.drop_table("sandbox_executions")
    op.drop_index("ix_sandboxes_project_id_create_time", table_name="sandboxes")
    op.drop_index(
        "ix_sandboxes_live",
        table_name="sandboxes",
        postgresql_where="state IN ('creating', 'running', 'paused')",
    )
    op.drop_table("sandboxes")
