"""Concurrency holds are counted as they come and go: taking a place reads one count per
process instead of counting every place the subject holds.

A user with 2,000 open streams made each new stream's take count 2,000 rows under the
subject's lock (2.6 ms a take in PostgreSQL, takes of one subject in single file): a burst
of opens queued behind it. A trigger now keeps `concurrency_counts` (places per kind,
subject and owning process) in step with `concurrency_holds`, whichever statement inserts
or deletes a place; the take sums the counts of live processes.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNT_HOLD = """
CREATE FUNCTION forge_count_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO concurrency_counts AS c (kind, subject, owner, used)
        VALUES (NEW.kind, NEW.subject, NEW.owner, 1)
        ON CONFLICT (kind, subject, owner) DO UPDATE SET used = c.used + 1;
        RETURN NEW;
    END IF;
    UPDATE concurrency_counts SET used = used - 1
    WHERE kind = OLD.kind AND subject = OLD.subject AND owner = OLD.owner;
    RETURN OLD;
END
$$
"""


def _take_hold(count_places: str) -> str:
    """forge_take_hold as in 0017: under a lock on (kind, subject), the places held by
    processes whose lease runs (but `p_given_back`, places the caller's process gave back and
    is deleting), as `count_places` puts them INTO `used`, and one more unless that reaches
    the limit. Answers -1 when taken, else how many are held."""
    return f"""
CREATE OR REPLACE FUNCTION forge_take_hold(
    p_id uuid, p_kind text, p_subject uuid, p_owner text, p_limit integer, p_given_back uuid[]
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    used integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_kind || ':' || p_subject::text, 0));
{count_places}
    IF used >= p_limit THEN
        RETURN used;
    END IF;
    INSERT INTO concurrency_holds (id, kind, subject, owner)
    VALUES (p_id, p_kind, p_subject, p_owner);
    RETURN -1;
END
$$
"""  # noqa: S608 - built from this file's two constant fragments, no input


# One statement, so one snapshot: a place given back whose row is deleted meanwhile is
# counted in neither part or in both, never in the sum alone.
TAKE_HOLD = _take_hold(
    """    SELECT coalesce((
        SELECT sum(c.used)
        FROM concurrency_counts AS c JOIN server_processes AS p ON p.owner = c.owner
        WHERE c.kind = p_kind AND c.subject = p_subject AND p.lease_expires_at > now()
    ), 0) - (
        SELECT count(*)
        FROM concurrency_holds AS h JOIN server_processes AS p ON p.owner = h.owner
        WHERE h.id = ANY(p_given_back) AND h.kind = p_kind AND h.subject = p_subject
          AND p.lease_expires_at > now()
    ) INTO used;"""
)
# 0017's, counting the subject's places one by one (restored by the downgrade).
COUNTING_TAKE_HOLD = _take_hold(
    """    SELECT count(*) INTO used
    FROM concurrency_holds AS h JOIN server_processes AS p ON p.owner = h.owner
    WHERE h.kind = p_kind AND h.subject = p_subject AND p.lease_expires_at > now()
      AND NOT (h.id = ANY(p_given_back));"""
)


def upgrade() -> None:
    op.create_table(
        "concurrency_counts",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("subject", sa.Uuid(), primary_key=True),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("used", sa.Integer(), nullable=False),
    )
    op.execute(COUNT_HOLD)
    # The lock keeps places from coming or going between the count and the trigger.
    op.execute("LOCK TABLE concurrency_holds IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "INSERT INTO concurrency_counts (kind, subject, owner, used) "
        "SELECT kind, subject, owner, count(*) FROM concurrency_holds GROUP BY 1, 2, 3"
    )
    op.execute(
        "CREATE TRIGGER concurrency_holds_counted AFTER INSERT OR DELETE ON concurrency_holds "
        "FOR EACH ROW EXECUTE FUNCTION forge_count_hold()"
    )
    op.execute(TAKE_HOLD)


def downgrade() -> None:
    op.execute("DROP TRIGGER concurrency_holds_counted ON concurrency_holds")
    op.execute("DROP FUNCTION forge_count_hold()")
    op.drop_table("concurrency_counts")
    op.execute(COUNTING_TAKE_HOLD)
