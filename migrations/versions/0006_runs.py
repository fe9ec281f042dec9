"""agent runs and their event log; agent profiles name the run tools

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")

# Profiles written before runs existed named tools that were never built; each maps to the
# run tool that does its job.
_TOOL_RENAMES = {
    "exec": "bash",
    "run_code": "bash",
    "write_file": "editor",
    "read_file": "editor",
    "list_files": "editor",
    "create_artifact": "save_artifact",
}


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("goal", sa.Text(), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=True),
        sa.Column("conversation_id", sa.UUID(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("approval_mode", sa.String(length=24), nullable=False),
        sa.Column("sandbox_id", sa.UUID(), nullable=True),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("pending_tool_call", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("approval", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("inbox", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("step_count", sa.Integer(), nullable=False),
        sa.Column("max_steps", sa.Integer(), nullable=False),
        sa.Column("token_budget", sa.BigInteger(), nullable=False),
        sa.Column("time_limit_seconds", sa.Float(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.BigInteger(), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("creator_id", sa.UUID(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'waiting_for_approval', 'succeeded', 'failed', "
            "'cancelled')",
            name=op.f("ck_runs_status"),
        ),
        sa.CheckConstraint(
            "approval_mode IN ('auto', 'ask_before_bash', 'ask_before_writes')",
            name=op.f("ck_runs_approval_mode"),
        ),
        sa.CheckConstraint("max_steps >= 1", name=op.f("ck_runs_max_steps")),
        sa.CheckConstraint("last_seq >= 0", name=op.f("ck_runs_last_seq")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_runs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_runs_task_id_tasks"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_runs_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_runs_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_project_id_id", "runs", ["project_id", "id"], unique=False)
    op.create_index("ix_runs_creator_id_status", "runs", ["creator_id", "status"], unique=False)
    op.create_index(
        "ix_runs_status_lease_expires_at", "runs", ["status", "lease_expires_at"], unique=False
    )

    op.create_table(
        "run_events",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("internal", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_run_events_seq")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_events_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_run_events")),
    )

    profiles = sa.table("agent_profiles", sa.column("id"), sa.column("tools"))
    connection = op.get_bind()
    for profile_id, tools in connection.execute(sa.select(profiles.c.id, profiles.c.tools)):
        renamed = list(dict.fromkeys(_TOOL_RENAMES.get(tool, tool) for tool in tools or []))
        if renamed != list(tools or []):
            connection.execute(
                profiles.update()
                .where(profiles.c.id == profile_id)
                .values(tools=sa.cast(sa.literal(renamed, postgresql.JSONB), postgresql.JSONB))
            )


def downgrade() -> None:
    op.drop_table("run_events")
    op.drop_index("ix_runs_status_lease_expires_at", table_name="runs")
    op.drop_index("ix_runs_creator_id_status", table_name="runs")
    op.drop_index("ix_runs_project_id_id", table_name="runs")
    op.drop_table("runs")
