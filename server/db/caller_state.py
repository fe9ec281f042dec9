"""The columns that tell whether an access token's user and session may still call (see
server/core/caller_state.py), for the interceptor's own read and for handlers that read
them along with their first statement. Parameters: `user_id`, `session_id`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.sql.elements import Label

from server.db.models import Session, User
from server.db.reads import DirectRead


def caller_state_columns() -> tuple[Label[Any], Label[Any], Label[Any]]:
    """`caller_disabled`, `caller_role`, `caller_session_revoked`, for a query whose FROM
    has the user's row (`User.id == :user_id`)."""
    revoked = (
        select(Session.revoke_time.is_not(None) | (Session.expire_time < func.now()))
        .where(Session.id == bindparam("session_id"), Session.user_id == User.id)
        .scalar_subquery()
    )
    return (
        User.disabled.label("caller_disabled"),
        User.role.label("caller_role"),
        revoked.label("caller_session_revoked"),
    )


# Runs on every authenticated call, hence straight on the driver (see DirectRead).
CALLER_STATE = DirectRead(select(*caller_state_columns()).where(User.id == bindparam("user_id")))
