"""Agent profiles' top_p and stop sequences; conversation summaries (compaction)

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLES_BEFORE = "('user', 'assistant', 'system', 'tool')"
_ROLES_AFTER = "('user', 'assistant', 'system', 'tool', 'summary')"


def upgrade() -> None:
    op.add_column("agent_profiles", sa.Column("top_p", sa.Float(), nullable=True))
    op.add_column(
        "agent_profiles",
        sa.Column(
            "stop_sequences",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("messages", sa.Column("summarized_through_id", sa.Uuid(), nullable=True))
    op.add_column(
        "messages",
        sa.Column(
            "summarized_message_count", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
    )
    op.drop_constraint(op.f("ck_messages_role"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_role"), "messages", f"role IN {_ROLES_AFTER}")
    # A chat's history starts at its conversation's newest summary.
    op.create_index(
        "ix_messages_summaries",
        "messages",
        ["conversation_id", "id"],
        postgresql_where=sa.text("role = 'summary'"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_summaries", table_name="messages")
    op.execute("DELETE FROM messages WHERE role = 'summary'")
    op.drop_constraint(op.f("ck_messages_role"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_role"), "messages", f"role IN {_ROLES_BEFORE}")
    op.drop_column("messages", "summarized_message_count")
    op.drop_column("messages", "summarized_through_id")
    op.drop_column("agent_profiles", "stop_sequences")
    op.drop_column("agent_profiles", "top_p")
