"""Single-use tokens sent by mail (email verification, password reset).

A token is stored only as its digest, issued in the transaction of the change that needs it
(its mail queued in the outbox alongside), and redeemed once before it expires. Whoever
issues one wakes the mail sender after the transaction commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.audit import Action, record
from server.auth.mail import enqueue, secret
from server.auth.tokens import digest, new_one_time_token
from server.core.errors import FieldViolation, InvalidArgument
from server.core.timestamps import utcnow
from server.db.models import OneTimeToken


@dataclass(frozen=True)
class MailedToken:
    """A kind of mailed token: what it is for, how long it lasts, and the mail carrying it
    (`body` has a `{token}` placeholder)."""

    purpose: str
    ttl: timedelta
    subject: str
    body: str


EMAIL_VERIFICATION = MailedToken(
    purpose="email_verify",
    ttl=timedelta(hours=24),
    subject="Verify your Forge email address",
    body="Welcome to Forge.\n\nVerify your email address with this token (valid 24 hours):\n\n"
    "{token}\n",
)

PASSWORD_RESET = MailedToken(
    purpose="password_reset",
    ttl=timedelta(hours=1),
    subject="Reset your Forge password",
    body="Someone asked to reset the password of your Forge account.\n\n"
    "Reset token (valid 1 hour, single use):\n\n{token}\n\n"
    "If it was not you, ignore this mail.\n",
)


def issue(db: AsyncSession, kind: MailedToken, user_id: uuid.UUID, address: str) -> None:
    """Adds a new token of `kind` for the user to `db`, and queues the mail that carries it."""
    token = new_one_time_token()
    db.add(
        OneTimeToken(
            user_id=user_id,
            purpose=kind.purpose,
            token_hash=digest(token),
            expire_time=utcnow() + kind.ttl,
        )
    )
    enqueue(db, address, kind.subject, kind.body.format(token=secret(token)))


async def redeem(db: AsyncSession, kind: MailedToken, token: str) -> uuid.UUID:
    """Marks the token used and answers whose it is; INVALID_ARGUMENT if it is unknown,
    expired or already used."""
    found = await store.one_time_token(db, digest(token), kind.purpose) if token else None
    if found is None or found.use_time is not None or found.expire_time <= utcnow():
        raise InvalidArgument.of(
            [FieldViolation("token", "is invalid, expired or already used")],
            reason="TOKEN_INVALID",
        )
    found.use_time = utcnow()
    return found.user_id


class EmailVerification:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def verify(self, token: str) -> None:
        if not token:
            raise InvalidArgument.of([FieldViolation("token", "is required")])
        async with self._sessions() as db, db.begin():
            user_id = await redeem(db, EMAIL_VERIFICATION, token)
            user = await store.user_by_id(db, user_id, lock=True)
            assert user is not None
            user.email_verified = True
            record(db, Action.EMAIL_VERIFIED, actor_id=user.id, subject_id=user.id)
