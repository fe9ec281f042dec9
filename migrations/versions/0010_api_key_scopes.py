"""API key scopes: what each key may do; existing keys keep every scope but admin

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column(
            "scopes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text('\'["read", "write", "sandbox:exec"]\'::jsonb'),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("api_keys", "scopes")
