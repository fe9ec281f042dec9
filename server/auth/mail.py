"""Outgoing mail: queued in the email_outbox table with the change that causes it, then
delivered by a background sender over SMTP (or, in development without SMTP, written to a
file under the data directory).

A secret in a mail (a one-time token) is marked in the queued body; once the mail is
handed to SMTP (or given up on), the outbox keeps the body with the secret redacted, so a
read of the table never yields a usable token. Nothing logs a body."""

from __future__ import annotations

import logging
import os
import re
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.tasks import TaskSupervisor, Ticker
from server.core.timestamps import utcnow
from server.db.models import EmailOutbox

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BATCH = 20
POLL_SECONDS = 30.0


REDACTED = "[redacted]"
_SECRET = re.compile(r"\[\[secret:([A-Za-z0-9_\-]+)\]\]")


def secret(value: str) -> str:
    """`value` marked as a secret in a body given to `enqueue` (url-safe characters only)."""
    return f"[[secret:{value}]]"


def revealed(body: str) -> str:
    """The body as sent: secrets unmarked."""
    return _SECRET.sub(lambda found: found.group(1), body)


def redacted(body: str) -> str:
    """The body as kept once sent: secrets replaced."""
    return _SECRET.sub(REDACTED, body)


def enqueue(session: AsyncSession, to: str, subject: str, body: str) -> None:
    session.add(EmailOutbox(to_address=to, subject=subject, body=body))


class MailSender:
    """Delivers queued mail every POLL_SECONDS, and at once when woken."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        smtp_url: str | None,
        mail_from: str,
        unsent_dir: Path,
    ) -> None:
        """Without `smtp_url`, mail is written to files in `unsent_dir` (development)."""
        self._sessions = sessions
        self._smtp_url = smtp_url
        self._unsent_dir = unsent_dir
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
                except self._delivery_errors() as error:
                    mail.last_error = type(error).__name__
                    log.warning("mail delivery failed", extra={"mail_id": str(mail.id)})
                    if mail.attempts >= MAX_ATTEMPTS:  # given up: its secret is of no use
                        mail.body = redacted(mail.body)
                    continue
                mail.send_time = utcnow()
                mail.body = redacted(mail.body)
                sent += 1
        return sent

    async def _deliver(self, mail: EmailOutbox) -> None:
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message.set_content(revealed(mail.body))
        if self._smtp_url is None:
            path = self._write_unsent(str(mail.id), message)
            log.info(
                "mail written to a file (FORGE_SMTP_URL is unset)",
                extra={"to": mail.to_address, "subject": mail.subject, "path": str(path)},
            )
            return
        import aiosmtplib  # loaded with the first mail sent over SMTP

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

    def _delivery_errors(self) -> tuple[type[Exception], ...]:
        """What a delivery that failed raises (evaluated only once one did): the system's
        errors, and SMTP's when mail goes over SMTP (by then _deliver has loaded aiosmtplib)."""
        if self._smtp_url is None:
            return (OSError,)
        import aiosmtplib

        return (aiosmtplib.SMTPException, OSError)

    def _write_unsent(self, mail_id: str, message: EmailMessage) -> Path:
        self._unsent_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._unsent_dir / f"{mail_id}.eml"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(message.as_bytes())
        return path
