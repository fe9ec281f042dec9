"""builds: esbuild bundles of artifact versions and their output files

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "artifact_builds",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("artifact_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("requested_entry", sa.String(length=1024), nullable=False),
        sa.Column("entry_point", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("diagnostics", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("creator_id", sa.UUID(), nullable=True),
        sa.Column(
            "create_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('succeeded', 'failed')", name=op.f("ck_artifact_builds_status")
        ),
        sa.ForeignKeyConstraint(
            ["artifact_id", "version"],
            ["artifact_versions.artifact_id", "artifact_versions.version"],
            name=op.f("fk_artifact_builds_artifact_id_artifact_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_artifact_builds_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_builds")),
    )
    op.create_index(
        "ix_artifact_builds_version",
        "artifact_builds",
        ["artifact_id", "version", "requested_entry"],
        unique=False,
    )
    op.create_table(
        "artifact_build_files",
        sa.Column("build_id", sa.UUID(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_id"],
            ["artifact_builds.id"],
            name=op.f("fk_artifact_build_files_build_id_artifact_builds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("build_id", "path", name=op.f("pk_artifact_build_files")),
    )
    op.create_index(
        op.f("ix_artifact_build_files_sha256"), "artifact_build_files", ["sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_artifact_build_files_sha256"), table_name="artifact_build_files")
    op.drop_table("artifact_build_files")
    op.drop_index("ix_artifact_builds_version", table_name="artifact_builds")
    op.drop_table("artifact_builds")
