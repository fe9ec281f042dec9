"""tree artifacts: the files of tree versions, and the kind "tree"

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS_BEFORE = "kind IN ('code', 'html', 'react', 'markdown', 'image', 'file')"
_KINDS_AFTER = "kind IN ('code', 'html', 'react', 'markdown', 'image', 'file', 'tree')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_artifacts_kind"), "artifacts", type_="check")
    op.create_check_constraint(op.f("ck_artifacts_kind"), "artifacts", _KINDS_AFTER)
    op.create_table(
        "artifact_files",
        sa.Column("artifact_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_artifact_files_size_bytes")),
        sa.ForeignKeyConstraint(
            ["artifact_id", "version"],
            ["artifact_versions.artifact_id", "artifact_versions.version"],
            name=op.f("fk_artifact_files_artifact_id_artifact_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("artifact_id", "version", "path", name=op.f("pk_artifact_files")),
    )
    op.create_index(op.f("ix_artifact_files_sha256"), "artifact_files", ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_artifact_files_sha256"), table_name="artifact_files")
    op.drop_table("artifact_files")
    op.execute("DELETE FROM artifacts WHERE kind = 'tree'")
    op.drop_constraint(op.f("ck_artifacts_kind"), "artifacts", type_="check")
    op.create_check_constraint(op.f("ck_artifacts_kind"), "artifacts", _KINDS_BEFORE)
