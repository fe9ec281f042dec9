"""One-time tokens by mail are never kept or logged in plain text once the mail is handed
on: the outbox keeps a redacted body, no log line holds the token, and without SMTP
(development) the mail goes to a private file, not to the log."""

from __future__ import annotations

import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc

from server.auth.mail import MailSender, enqueue, secret
from server.db.engine import make_engine, make_session_factory
from tests.support.accounts import Account
from tests.support.mailbox import Mailbox, token_in
from tests.support.waiting import eventually


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    yield connection
    await connection.close()


def _logged(records: list[logging.LogRecord]) -> str:
    """What the server logged (not the test's SMTP server, the mail's recipient)."""
    return "\n".join(
        f"{record.getMessage()} {record.__dict__!r}"
        for record in records
        if not record.name.startswith("mail.log")
    )


async def test_a_sent_reset_token_is_in_no_table_and_no_log_line(
    channel: grpc.aio.Channel,
    mailbox: Mailbox,
    user: Account,
    database: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email=user.email))
    token = token_in(await mailbox.wait_for(user.email, "Reset your Forge password"))

    async def sent_bodies() -> list[str] | None:
        rows = await database.fetch(
            "SELECT body, send_time FROM email_outbox WHERE to_address = $1", user.email
        )
        return [row["body"] for row in rows] if all(row["send_time"] for row in rows) else None

    bodies = await eventually(sent_bodies)
    assert any("[redacted]" in body for body in bodies)
    assert not any(token in body for body in bodies)
    tokens = await database.fetch("SELECT token_hash::text AS hash FROM one_time_tokens")
    assert not any(token in row["hash"] for row in tokens)
    assert token not in _logged(caplog.records)
    # ...and the token still works.
    await stub.ResetPassword(
        auth_pb2.ResetPasswordRequest(token=token, new_password="Brand-N3w-Secret")
    )


async def test_without_smtp_mail_goes_to_a_private_file_not_the_log(
    database_url: str,
    tmp_path: Path,
    database: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    address = f"dev-{tmp_path.name}@example.com"
    try:
        async with sessions() as db, db.begin():
            enqueue(db, address, "Your token", f"Token:\n\n{secret('s3cr3t-t0ken_x')}\n")
        sender = MailSender(sessions, None, "forge@example.com", tmp_path / "unsent")
        while await sender.deliver_pending():
            pass
    finally:
        await engine.dispose()
    [written] = list((tmp_path / "unsent").iterdir())
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert "s3cr3t-t0ken_x" in written.read_text()
    body = await database.fetchval("SELECT body FROM email_outbox WHERE to_address = $1", address)
    assert body == "Token:\n\n[redacted]\n"
    assert "s3cr3t-t0ken_x" not in _logged(caplog.records)
