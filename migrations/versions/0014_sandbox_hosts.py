"""Sandbox ownership in the database: each sandbox's Docker host, executions' owner leases,
and the per-host duty lease

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "state IN ('creating', 'running', 'paused')"


def upgrade() -> None:
    op.add_column("sandboxes", sa.Column("host_id", sa.String(length=200), nullable=True))
    op.create_index(
        "ix_sandboxes_host_id_live",
        "sandboxes",
        ["host_id"],
        unique=False,
        postgresql_where=_LIVE,
    )
    op.add_column("sandbox_executions", sa.Column("owner", sa.String(length=64), nullable=True))
    op.add_column(
        "sandbox_executions",
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_sandbox_executions_running_owner",
        "sandbox_executions",
        ["owner"],
        unique=False,
        postgresql_where="state = 'running'",
    )
    op.create_table(
        "sandbox_hosts",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("lease_token", sa.BigInteger(), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_hosts")),
    )


def downgrade() -> None:
    op.drop_table("sandbox_hosts")
    op.drop_index(
        "ix_sandbox_executions_running_owner",
        table_name="sandbox_executions",
        postgresql_where="state = 'running'",
    )
    op.drop_column("sandbox_executions", "lease_expires_at")
    op.drop_column("sandbox_executions", "owner")
    op.drop_index("ix_sandboxes_host_id_live", table_name="sandboxes", postgresql_where=_LIVE)
    op.drop_column("sandboxes", "host_id")
