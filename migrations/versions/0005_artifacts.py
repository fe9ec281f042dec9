"""artifacts and their versions

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("language", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("origin", sa.String(length=24), nullable=False),
        sa.Column("conversation_id", sa.UUID(), nullable=True),
        sa.Column("message_id", sa.UUID(), nullable=True),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("creator_id", sa.UUID(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint(
            "kind IN ('code', 'html', 'react', 'markdown', 'image', 'file')",
            name=op.f("ck_artifacts_kind"),
        ),
        sa.CheckConstraint(
            "origin IN ('chat', 'run', 'api', 'upload', 'image_generation')",
            name=op.f("ck_artifacts_origin"),
        ),
        sa.CheckConstraint("latest_version >= 1", name=op.f("ck_artifacts_latest_version")),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_artifacts_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_artifacts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
    )
    op.create_index(
        "ix_artifacts_conversation_filename",
        "artifacts",
        ["conversation_id", "filename"],
        unique=False,
        postgresql_where="conversation_id IS NOT NULL",
    )
    op.create_index("ix_artifacts_project_id_id", "artifacts", ["project_id", "id"], unique=False)

    op.create_table(
        "artifact_versions",
        sa.Column("artifact_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("message_id", sa.UUID(), nullable=True),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("creator_id", sa.UUID(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_artifact_versions_size_bytes")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_artifact_versions_version")),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name=op.f("fk_artifact_versions_artifact_id_artifacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_artifact_versions_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("artifact_id", "version", name=op.f("pk_artifact_versions")),
    )
    op.create_index(
        op.f("ix_artifact_versions_sha256"), "artifact_versions", ["sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_artifact_versions_sha256"), table_name="artifact_versions")
    op.drop_table("artifact_versions")
    op.drop_index("ix_artifacts_project_id_id", table_name="artifacts")
    op.drop_index(
        "ix_artifacts_conversation_filename",
        table_name="artifacts",
        postgresql_where="conversation_id IS NOT NULL",
    )
    op.drop_table("artifacts")
