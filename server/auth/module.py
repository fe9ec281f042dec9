"""Builds AuthService: accounts, sessions, API keys, mail, and the authenticator every
call goes through."""

from __future__ import annotations

from datetime import timedelta

from forge.auth.v1 import auth_pb2, auth_pb2_grpc

from server.auth.accounts import Accounts
from server.auth.authenticator import DatabaseAuthenticator
from server.auth.directory import Directory
from server.auth.mail import MailSender
from server.auth.passwords import PasswordHasher
from server.auth.service import PUBLIC_METHODS, AuthService
from server.auth.tokens import AccessTokens
from server.core.binding import ServiceBinding
from server.core.module import BuildContext, ServiceModule


class _MailAndHashing:
    """Sends queued mail in the background; closes the bcrypt threads at shutdown."""

    def __init__(self, sender: MailSender, hasher: PasswordHasher) -> None:
        self._sender = sender
        self._hasher = hasher

    async def start(self) -> None:
        self._sender.start()

    async def stop(self) -> None:
        await self._sender.stop()
        self._hasher.close()


def build(ctx: BuildContext) -> ServiceModule:
    settings = ctx.settings
    access_tokens = AccessTokens(
        ctx.secret,
        settings.jwt_issuer,
        settings.jwt_audience,
        timedelta(seconds=settings.access_token_ttl_seconds),
    )
    hasher = PasswordHasher(settings.bcrypt_rounds)
    smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    mail = MailSender(ctx.sessions, smtp_url, settings.mail_from)
    accounts = Accounts(settings, ctx.sessions, hasher, access_tokens, mail)
    servicer = AuthService(accounts, Directory(ctx.sessions, ctx.page_tokens))
    return ServiceModule(
        name="auth",
        bindings=[
            ServiceBinding.of(
                auth_pb2, auth_pb2_grpc, "AuthService", servicer, public_methods=PUBLIC_METHODS
            )
        ],
        background=[_MailAndHashing(mail, hasher)],
        authenticator=DatabaseAuthenticator(ctx.sessions, access_tokens),
    )
