"""Token usage: recorded per user, UTC day and model; reported by GetUsage; limited by the
optional per-user daily quota (input + output tokens), which resets at midnight UTC.

Each charge records its cost too, at the model's prices when it is charged (`prices`: the
model catalog), so a later price change does not rewrite past days."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import store
from server.agents.charges import UsageCharge
from server.agents.views import UsageRecord, UsageReport
from server.core.errors import QuotaViolation, ResourceExhausted, Violations
from server.core.timestamps import utcnow
from server.llm import Usage
from server.llm.base import FREE, ModelPrices

QUOTA_EXCEEDED = "DAILY_TOKEN_QUOTA_EXCEEDED"
DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def next_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)


class UsageLedger:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        daily_token_quota: int | None,
        clock: Callable[[], datetime] = utcnow,
        prices: Callable[[str], ModelPrices] | None = None,
    ) -> None:
        """`prices`: a model id's prices now (None: everything is free)."""
        self._sessions = sessions
        self._quota = daily_token_quota
        self._clock = clock
        self._prices = prices or (lambda model: FREE)

    def today(self) -> date:
        return self._clock().astimezone(UTC).date()

    async def check_quota(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        """Refuses a new answer when the user's tokens today already reach the quota."""
        quota = self._quota
        if quota is None:
            return
        now = self._clock().astimezone(UTC)
        used = await store.tokens_used_on(db, user_id, now.date())
        if used < quota:
            return
        raise ResourceExhausted(
            message=f"the daily quota of {quota} tokens is used up; it resets at 00:00 UTC",
            reason=QUOTA_EXCEEDED,
            metadata={"quota_tokens": str(quota), "used_tokens": str(used)},
            retry_after=next_midnight(now) - now,
            quota_violations=[
                QuotaViolation(
                    subject=f"user:{user_id}",
                    description=f"{used} of {quota} tokens (input + output) used today (UTC)",
                )
            ],
        )

    def charge(self, user_id: uuid.UUID, model: str, usage: Usage) -> UsageCharge | None:
        """What recording `usage` adds to today's row (None when it has no tokens), for a
        statement that records it together with other writes."""
        if not usage.input_tokens and not usage.output_tokens:
            return None
        cost = self._prices(model).cost_nanos(usage.input_tokens, usage.output_tokens)
        return UsageCharge(
            user_id, self.today(), model, usage.input_tokens, usage.output_tokens, cost
        )

    async def charge_image(self, db: AsyncSession, user_id: uuid.UUID, model: str) -> None:
        """The `UsageCharges` port: one generated image, in the caller's transaction."""
        cost = self._prices(model).image_cost_nanos()
        await store.count_generated_image(db, user_id, model, self.today(), cost)

    @property
    def has_quota(self) -> bool:
        return self._quota is not None

    async def report(self, user_id: uuid.UUID, start_day: str, end_day: str) -> UsageReport:
        now = self._clock().astimezone(UTC)
        start, end = _day_range(start_day, end_day, now.date())
        async with self._sessions() as db:
            rows = await store.usage_between(db, user_id, start, end)
            used_today = await store.tokens_used_on(db, user_id, now.date())
        return UsageReport(
            start_day=start,
            end_day=end,
            records=tuple(
                UsageRecord(
                    day=row.day,
                    model=row.model,
                    input_tokens=row.input_tokens,
                    output_tokens=row.output_tokens,
                    request_count=row.request_count,
                    image_count=row.image_count,
                    cost_nanos=row.cost_nanos,
                )
                for row in rows
            ),
            daily_token_quota=self._quota or 0,
            tokens_used_today=used_today,
            quota_reset_time=next_midnight(now),
        )


def _parse_day(text: str, field: str, violations: Violations) -> date | None:
    if not text:
        return None
    if _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    violations.add(field, "must be a day written YYYY-MM-DD")
    return None


def _day_range(start_day: str, end_day: str, today: date) -> tuple[date, date]:
    violations = Violations()
    start = _parse_day(start_day, "start_day", violations)
    end = _parse_day(end_day, "end_day", violations)
    violations.raise_if_any()
    end = end or today
    # (from the ordinal: near 0001-01-01, `end - timedelta(...)` would overflow)
    start = start or date.fromordinal(max(1, end.toordinal() - (DEFAULT_RANGE_DAYS - 1)))
    violations.check(start <= end, "start_day", "must not be after end_day")
    violations.check(
        (end - start).days < MAX_RANGE_DAYS,
        "start_day",
        f"the range may cover at most {MAX_RANGE_DAYS} days",
    )
    violations.raise_if_any()
    return start, end
