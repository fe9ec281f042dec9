"""answers cut off by a crashed server are settled as interrupted; an index of the answers
still in progress for the sweeper that finds them

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = "('in_progress', 'complete', 'cancelled', 'failed')"
_AFTER = "('in_progress', 'complete', 'cancelled', 'failed', 'interrupted')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_messages_status"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_status"), "messages", f"status IN {_AFTER}")
    op.create_index(
        "ix_messages_in_progress",
        "messages",
        ["id"],
        postgresql_where=sa.text("status = 'in_progress'"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_in_progress", table_name="messages")
    op.execute("UPDATE messages SET status = 'cancelled' WHERE status = 'interrupted'")
    op.drop_constraint(op.f("ck_messages_status"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_status"), "messages", f"status IN {_BEFORE}")
