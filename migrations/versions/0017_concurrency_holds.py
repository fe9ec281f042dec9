"""Concurrency holds: each open stream and running execution holds a place, counted across
every server process (per user, per project), and the processes whose holds count

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One round trip takes a place: under a lock on (kind, subject), count the places held by
# processes whose lease runs (but `p_given_back`, places the caller's process gave back and
# is deleting), and add one unless that reaches the limit. Answers -1 when taken, else how
# many are held.
TAKE_HOLD = """
CREATE FUNCTION forge_take_hold(
    p_id uuid, p_kind text, p_subject uuid, p_owner text, p_limit integer, p_given_back uuid[]
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    used integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_kind || ':' || p_subject::text, 0));
    SELECT count(*) INTO used
    FROM concurrency_holds AS h JOIN server_processes AS p ON p.owner = h.owner
    WHERE h.kind = p_kind AND h.subject = p_subject AND p.lease_expires_at > now()
      AND NOT (h.id = ANY(p_given_back));
    IF used >= p_limit THEN
        RETURN used;
    END IF;
    INSERT INTO concurrency_holds (id, kind, subject, owner)
    VALUES (p_id, p_kind, p_subject, p_owner);
    RETURN -1;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "server_processes",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "start_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "concurrency_holds",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index("ix_concurrency_holds_kind_subject", "concurrency_holds", ["kind", "subject"])
    op.create_index("ix_concurrency_holds_owner", "concurrency_holds", ["owner"])
    op.execute(TAKE_HOLD)


def downgrade() -> None:
    op.execute("DROP FUNCTION forge_take_hold(uuid, text, uuid, text, integer, uuid[])")
    op.drop_index("ix_concurrency_holds_owner", table_name="concurrency_holds")
    op.drop_index("ix_concurrency_holds_kind_subject", table_name="concurrency_holds")
    op.drop_table("concurrency_holds")
    op.drop_table("server_processes")
