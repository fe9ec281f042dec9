"""Charging tokens: the one upsert into users' daily usage, and settling an answer with its
charge in one statement (chat answers, run turns and swept answers all charge through here).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, literal_column, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from server.db.agent_models import DailyUsage, MessageRow
from server.db.reads import DirectWrite

_MESSAGES = cast(Table, MessageRow.__table__)
_USAGE = cast(Table, DailyUsage.__table__)


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """Tokens to add to a user's usage of one model on one day, and what they cost."""

    user_id: uuid.UUID
    day: date
    model: str
    input_tokens: int
    output_tokens: int
    cost_nanos: int = 0
    """Billionths of a US dollar, at the model's prices now (UsageLedger.charge)."""


_SETTLE = (
    update(_MESSAGES)
    # An answer is settled once: one the sweeper settled meanwhile (its server lost the
    # database for a while) stays as it is, and is not charged again.
    .where(
        _MESSAGES.c.id == bindparam("message_id"),
        _MESSAGES.c.status == literal_column("'in_progress'"),
    )
    .values(
        content=bindparam("content"),
        status=bindparam("status"),
        finish_reason=bindparam("finish_reason"),
        input_tokens=bindparam("input_tokens"),
        output_tokens=bindparam("output_tokens"),
        error=bindparam("error"),
        update_time=func.now(),
    )
)
_SETTLE_ONLY = DirectWrite(_SETTLE)
_USAGE_COLUMNS = (
    "user_id",
    "day",
    "model",
    "input_tokens",
    "output_tokens",
    "request_count",
    "image_count",
    "cost_nanos",
)
_usage_params: tuple[ColumnElement[Any], ...] = (
    sql_cast(bindparam("user_id"), _USAGE.c.user_id.type),
    sql_cast(bindparam("day"), _USAGE.c.day.type),
    sql_cast(bindparam("model"), _USAGE.c.model.type),
    sql_cast(bindparam("charged_input_tokens"), _USAGE.c.input_tokens.type),
    sql_cast(bindparam("charged_output_tokens"), _USAGE.c.output_tokens.type),
    sql_cast(bindparam("request_count"), _USAGE.c.request_count.type),
    literal_column("0"),
    sql_cast(bindparam("charged_cost_nanos"), _USAGE.c.cost_nanos.type),
)


def _adding_to_usage(statement: Insert) -> Insert:
    return statement.on_conflict_do_update(
        index_elements=[_USAGE.c.user_id, _USAGE.c.day, _USAGE.c.model],
        set_={
            "input_tokens": _USAGE.c.input_tokens + statement.excluded.input_tokens,
            "output_tokens": _USAGE.c.output_tokens + statement.excluded.output_tokens,
            "request_count": _USAGE.c.request_count + statement.excluded.request_count,
            "cost_nanos": _USAGE.c.cost_nanos + statement.excluded.cost_nanos,
        },
    )


_ADD_USAGE = _adding_to_usage(insert(_USAGE).from_select(_USAGE_COLUMNS, select(*_usage_params)))
"""Adds tokens and requests to one user's daily usage row of a model (the one upsert every
charge goes through: chat answers, run turns, swept answers)."""
_settled = _SETTLE.returning(_MESSAGES.c.id).cte("settled")
_SETTLE_AND_CHARGE = DirectWrite(
    _adding_to_usage(
        insert(_USAGE).from_select(_USAGE_COLUMNS, select(*_usage_params).select_from(_settled))
    ).add_cte(_settled)
)
"""Settles an answer and charges it in one statement; nothing is charged when the answer
was settled already."""


def _usage_values(charge: UsageCharge, requests: int) -> dict[str, Any]:
    return {
        "user_id": charge.user_id,
        "day": charge.day,
        "model": charge.model,
        "charged_input_tokens": charge.input_tokens,
        "charged_output_tokens": charge.output_tokens,
        "request_count": requests,
        "charged_cost_nanos": charge.cost_nanos,
    }


async def add_usage(db: AsyncSession, charge: UsageCharge, requests: int = 1) -> None:
    """Adds `charge` (and `requests` requests) to the user's usage, in `db`'s transaction."""
    await db.execute(_ADD_USAGE, _usage_values(charge, requests))


async def settle_answer(
    sessions: async_sessionmaker[AsyncSession],
    message_id: uuid.UUID,
    *,
    content: str,
    status: str,
    finish_reason: str | None,
    input_tokens: int,
    output_tokens: int,
    error: dict[str, Any] | None,
    charge: UsageCharge | None,
) -> None:
    """Stores how an answer ended and, in the same statement, charges its tokens."""
    values: dict[str, Any] = {
        "message_id": message_id,
        "content": content,
        "status": status,
        "finish_reason": finish_reason,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "error": json.dumps(error) if error is not None else None,
    }
    if charge is None:
        await _SETTLE_ONLY.execute(sessions, **values)
        return
    await _SETTLE_AND_CHARGE.execute(sessions, **values, **_usage_values(charge, 1))
