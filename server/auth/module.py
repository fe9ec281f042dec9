"""Builds AuthService: accounts, sessions, API keys, mail, and the authenticator every
call goes through."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from forge.auth.v1 import auth_pb2, auth_pb2_grpc

from server.auth.admin import Admin
from server.auth.api_keys import ApiKeys
from server.auth.authenticator import DatabaseAuthenticator
from server.auth.directory import Directory
from server.auth.hashing import PasswordHasher
from server.auth.limits import UserLimitsBook
from server.auth.mail import MailSender
from server.auth.mailed import EmailVerification
from server.auth.passwords import Passwords
from server.auth.profile import Profile
from server.auth.service import PUBLIC_METHODS, AuthDomain, AuthService
from server.auth.sessions import Sessions
from server.auth.tokens import AccessTokens, RefreshRotation
from server.core.binding import ServiceBinding
from server.core.hooks import Offers
from server.core.module import BuildContext, ServiceModule


class _HasherPool:
    """Closes the bcrypt threads at shutdown."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
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
    mail = MailSender(
        ctx.sessions, smtp_url, settings.mail_from, Path(settings.data_dir) / "unsent-mail"
    )
    limits = UserLimitsBook(ctx.sessions, settings)
    domain = AuthDomain(
        sessions=Sessions(
            settings, ctx.sessions, hasher, access_tokens, RefreshRotation(ctx.secret), mail
        ),
        profile=Profile(ctx.sessions),
        passwords=Passwords(ctx.sessions, hasher, mail),
        verification=EmailVerification(ctx.sessions),
        api_keys=ApiKeys(ctx.sessions),
        admin=Admin(ctx.sessions),
        directory=Directory(ctx.sessions, ctx.hooks.system_counters),
        limits=limits,
    )
    servicer = AuthService(domain, ctx.page_tokens)
    return ServiceModule(
        name="auth",
        bindings=[
            ServiceBinding.of(
                auth_pb2,
                auth_pb2_grpc,
                "AuthService",
                servicer,
                public_methods=PUBLIC_METHODS,
                caller_if_given=("Logout",),
                # Its one read also reads the caller's account state: one round trip.
                state_read_by_handler=("GetCurrentUser",),
            )
        ],
        # Stopped in reverse: the sender first, then the bcrypt threads.
        background=[_HasherPool(hasher), mail],
        authenticator=DatabaseAuthenticator(ctx.sessions, access_tokens),
        # Every user's fair shares, read by the services that enforce them.
        offers=Offers(limits=limits),
    )
