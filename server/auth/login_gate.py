"""Failed sign-ins are limited per account and client address, and per account.

An attempt is counted before its password is checked: it is recorded as a pending failure,
in one transaction with the count (serialised per account by an advisory lock), and turned
into a success only once the password proved right. So a burst of parallel guesses runs at
most the allowed number of password checks, however many arrive at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.audit import Action, record
from server.core.errors import QuotaViolation, ResourceExhausted
from server.core.timestamps import utcnow
from server.db.models import AuditEvent


@dataclass(frozen=True)
class LoginLimits:
    window: timedelta
    per_address: int
    per_account: int


def _limited(retry_after: timedelta, subject: str, allowed: int) -> ResourceExhausted:
    return ResourceExhausted(
        "too many failed sign-in attempts; try again later",
        "LOGIN_RATE_LIMITED",
        retry_after=max(retry_after, timedelta(seconds=1)),
        quota_violations=(
            QuotaViolation(subject, f"at most {allowed} failed sign-ins per window"),
        ),
    )


IN_FLIGHT_FOR = timedelta(seconds=30)
"""An attempt still unsettled after this long died with its server: it counts as failed."""
WAIT_SECONDS = 10.0
"""How long an attempt waits for those in flight before it is refused."""
_POLL_SECONDS = 0.05


class LoginGate:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], limits: LoginLimits) -> None:
        self._sessions = sessions
        self._limits = limits

    async def admit(self, email: str, peer: str) -> uuid.UUID:
        """Records an attempt for `email` from `peer` (as failed, pending) and returns its
        event id; RESOURCE_EXHAUSTED LOGIN_RATE_LIMITED (the refusal recorded) when over a
        limit. While attempts in flight could still use up a limit, it waits for them: so
        parallel right passwords all get in, and parallel guesses get the allowed number."""
        give_up = time.monotonic() + WAIT_SECONDS
        while True:
            outcome = await self._try_admit(email, peer, waiting_over=time.monotonic() > give_up)
            if isinstance(outcome, ResourceExhausted):
                raise outcome
            if outcome is not None:
                return outcome
            await asyncio.sleep(_POLL_SECONDS)

    async def _try_admit(
        self, email: str, peer: str, waiting_over: bool
    ) -> uuid.UUID | ResourceExhausted | None:
        limits = self._limits
        async with self._sessions() as db, db.begin():
            await db.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(email, 0))))
            seen = await store.recent_login_failures(db, email, peer, limits.window, IN_FLIGHT_FOR)
            refused: ResourceExhausted | None = None
            if seen.from_address >= limits.per_address:
                refused = _limited(
                    self._retry_after(seen.oldest_from_address),
                    "account from this address",
                    limits.per_address,
                )
            elif seen.total >= limits.per_account:
                refused = _limited(self._retry_after(seen.oldest), "account", limits.per_account)
            elif (
                seen.from_address + seen.in_flight_from_address >= limits.per_address
                or seen.total + seen.in_flight >= limits.per_account
            ):
                if not waiting_over:
                    return None  # decided by the attempts in flight
                refused = _limited(limits.window, "account", limits.per_account)
            if refused is not None:
                record(db, Action.LOGIN_RATE_LIMITED, target=email)
                return refused
            attempt = record(db, Action.LOGIN_FAILED, target=email, details={"pending": True})
            await db.flush()
            return attempt.id

    def _retry_after(self, oldest: datetime | None) -> timedelta:
        window = self._limits.window
        return (oldest + window - utcnow()) if oldest is not None else window

    async def settle(self, attempt: uuid.UUID, user_id: uuid.UUID | None, succeeded: bool) -> None:
        """Names the account the attempt was for and, if the password was right, makes it
        the success it was (which also starts a new window of failures)."""
        values: dict[str, object] = {"subject_id": user_id, "details": {}}
        if succeeded:
            values |= {"action": Action.LOGIN_SUCCEEDED.value, "actor_id": user_id}
        async with self._sessions() as db, db.begin():
            await db.execute(update(AuditEvent).where(AuditEvent.id == attempt).values(**values))
