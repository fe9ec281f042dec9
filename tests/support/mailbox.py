"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import email
import re
import socket
from dataclasses import dataclass, field
from email.message import Message

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.waiting import eventually


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append(email.message_from_bytes(content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, address: str, subject_contains: str, timeout: float = 15) -> Message:
        async def probe() -> Message | None:
            for message in self.to(address):
                if subject_contains in (message["Subject"] or ""):
                    return message
            return None

        return await eventually(probe, timeout=timeout)


def token_in(message: Message) -> str:
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    match = re.search(r"^([A-Za-z0-9_-]{40,})$", body.decode().replace("\r\n", "\n"), re.MULTILINE)
    assert match, body
    return match.group(1)


class SmtpServer:
    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.mailbox = Mailbox()
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
