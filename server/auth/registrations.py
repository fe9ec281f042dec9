"""The registration throttle: at most `registrations_per_address_per_hour` accounts from one
client address per hour, counted from the audit log's `register` events (so every server
counts the same ones, and the count is exact under the registration lock)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.errors import QuotaViolation, ResourceExhausted
from server.core.timestamps import utcnow
from server.db.models import AuditEvent

WINDOW = timedelta(hours=1)
REGISTRATION_RATE_LIMITED = "REGISTRATION_RATE_LIMITED"
LIMIT_NAME = "registrations_per_address_per_hour"


class RegistrationThrottle:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], per_hour: int) -> None:
        self._sessions = sessions
        self._per_hour = per_hour

    async def precheck(self, address: str) -> None:
        """Refuses early, before the password is hashed (the check that counts is `check`)."""
        async with self._sessions() as db:
            await self.check(db, address)

    async def check(self, db: AsyncSession, address: str) -> None:
        """Refuses a registration from `address` past the hourly limit. Exact when `db`
        holds the registration lock (registrations are serialised by it)."""
        peer = address[:64]  # as the audit log stores it
        count, oldest = (
            await db.execute(
                select(func.count(), func.min(AuditEvent.create_time)).where(
                    AuditEvent.action == "register",
                    AuditEvent.peer_address == peer,
                    AuditEvent.create_time > func.now() - WINDOW,
                )
            )
        ).one()
        if count < self._per_hour:
            return
        retry_after = (oldest + WINDOW - utcnow()) if oldest is not None else WINDOW
        raise ResourceExhausted(
            message=f"too many accounts were registered from this address "
            f"(at most {self._per_hour} per hour); try again later",
            reason=REGISTRATION_RATE_LIMITED,
            metadata={"quota": LIMIT_NAME, "limit": str(self._per_hour), "used": str(count)},
            retry_after=max(retry_after, timedelta(seconds=1)),
            quota_violations=[
                QuotaViolation(
                    subject=f"address:{peer}",
                    description=f"{LIMIT_NAME}: {count} of {self._per_hour} accounts "
                    "registered from this address in the last hour",
                )
            ],
        )
