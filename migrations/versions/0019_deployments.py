"""deployments: deploy targets (sealed tokens) and deployments with their progress

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deploy_targets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("encryption_key_id", sa.String(length=16), nullable=False),
        sa.Column("token_hint", sa.String(length=8), nullable=False),
        sa.Column("creator_id", sa.UUID(), nullable=True),
        sa.Column(
            "create_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('s3_website', 'netlify', 'vercel', 'github_pages')",
            name=op.f("ck_deploy_targets_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_deploy_targets_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_deploy_targets_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_targets")),
    )
    op.create_index(
        "ix_deploy_targets_project_id_id", "deploy_targets", ["project_id", "id"], unique=False
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("target_id", sa.UUID(), nullable=False),
        sa.Column("build_id", sa.UUID(), nullable=True),
        sa.Column("artifact_id", sa.UUID(), nullable=True),
        sa.Column("artifact_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("uploaded_file_count", sa.Integer(), nullable=False),
        sa.Column("error_reason", sa.String(length=64), nullable=False),
        sa.Column("error_message", sa.String(length=1024), nullable=False),
        sa.Column("handle", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "heartbeat_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("creator_id", sa.UUID(), nullable=True),
        sa.Column(
            "create_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("live_time", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(build_id IS NULL) <> (artifact_id IS NULL)", name=op.f("ck_deployments_one_source")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'uploading', 'live', 'failed', 'superseded')",
            name=op.f("ck_deployments_status"),
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_deployments_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_deployments_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["deploy_targets.id"],
            name=op.f("fk_deployments_target_id_deploy_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    op.create_index(
        "ix_deployments_project_id_id", "deployments", ["project_id", "id"], unique=False
    )
    op.create_index("ix_deployments_target_id", "deployments", ["target_id"], unique=False)
    op.create_index(
        "ix_deployments_in_progress",
        "deployments",
        ["heartbeat_time"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'uploading')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_deployments_in_progress",
        table_name="deployments",
        postgresql_where=sa.text("status IN ('queued', 'uploading')"),
    )
    op.drop_index("ix_deployments_target_id", table_name="deployments")
    op.drop_index("ix_deployments_project_id_id", table_name="deployments")
    op.drop_table("deployments")
    op.drop_index("ix_deploy_targets_project_id_id", table_name="deploy_targets")
    op.drop_table("deploy_targets")
