"""Outgoing mail: queued in the email_outbox table with the change that causes it, then
delivered by a background sender over SMTP (or written to the log when no SMTP is set)."""

from __future__ import annotations

import logging
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.tasks import TaskSupervisor, Ticker
from server.core.timestamps import utcnow
from server.db.models import EmailOutbox

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BATCH = 20
POLL_SECONDS = 30.0


def enqueue(session: AsyncSession, to: str, subject: str, body: str) -> None:
    session.add(EmailOutbox(to_address=to, subject=subject, body=body))


class MailSender:
    """Delivers queued mail every POLL_SECONDS, and at once when woken."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        smtp_url: str | None,
        mail_from: str,
    ) -> None:
        self._sessions = sessions
        self._smtp_url = smtp_url
        self._from = mail_from
        self._tasks = TaskSupervisor("mail")
        self._ticker: Ticker | None = None

    async def start(self) -> None:
        self._ticker = self._tasks.every("sender", POLL_SECONDS, self.deliver_pending)
        self._ticker.poke()  # deliver what is already queued without waiting a round

    async def stop(self) -> None:
        await self._tasks.stop()
        self._ticker = None

    def wake(self) -> None:
        """Called after a transaction that queued mail commits."""
        if self._ticker is not None:
            self._ticker.poke()

    async def deliver_pending(self) -> int:
        sent = 0
        async with self._sessions() as session, session.begin():
            rows = (
                await session.scalars(
                    select(EmailOutbox)
                    .where(EmailOutbox.send_time.is_(None), EmailOutbox.attempts < MAX_ATTEMPTS)
                    .order_by(EmailOutbox.create_time)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for mail in rows:
                mail.attempts += 1
                try:
                    await self._deliver(mail)
                except (aiosmtplib.SMTPException, OSError) as error:
                    mail.last_error = type(error).__name__
                    log.warning("mail delivery failed", extra={"mail_id": str(mail.id)})
                    continue
                mail.send_time = utcnow()
                sent += 1
        return sent

    async def _deliver(self, mail: EmailOutbox) -> None:
        if self._smtp_url is None:
            # Development: no SMTP server configured, so the mail goes to the log.
            log.info(
                "mail (not sent: FORGE_SMTP_URL is unset)",
                extra={"to": mail.to_address, "subject": mail.subject, "body": mail.body},
            )
            return
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        url = urlsplit(self._smtp_url)
        await aiosmtplib.send(
            message,
            hostname=url.hostname or "localhost",
            port=url.port or (465 if url.scheme == "smtps" else 25),
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else None,
            use_tls=url.scheme == "smtps",
            start_tls=None,
            timeout=timedelta(seconds=30).total_seconds(),
        )
