"""Sign-up, sign-in and sessions: each sign-in opens a session holding a refresh token that
rotates on every use. A rotated token that comes back means someone kept a copy: the whole
session ends, unless it comes back within a short grace window while the token issued for it
is still current (a race, not a theft): then it gets that same token again. Users list their
live sessions and end any of them."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import mailed, store
from server.auth.audit import Action, record
from server.auth.hashing import PasswordHasher, check_password
from server.auth.login_gate import LoginGate, LoginLimits
from server.auth.mail import MailSender
from server.auth.profile import check_display_name
from server.auth.registrations import RegistrationThrottle
from server.auth.tokens import AccessTokens, RefreshRotation, digest, new_refresh_token
from server.auth.views import IssuedTokens, SessionView, SignedIn, UserView
from server.config import Settings
from server.core.context import Caller, current_call
from server.core.emails import normalise_email
from server.core.errors import (
    AlreadyExists,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Violations,
)
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.core.timestamps import utcnow
from server.db.models import RefreshToken, Session, User

_BAD_CREDENTIALS = "email or password is incorrect"


def _refresh_token_invalid() -> Unauthenticated:
    return Unauthenticated("the refresh token is not valid", "REFRESH_TOKEN_INVALID")


class Sessions:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        hasher: PasswordHasher,
        access_tokens: AccessTokens,
        rotation: RefreshRotation,
        mail: MailSender,
    ) -> None:
        self._sessions = sessions
        self._registrations = RegistrationThrottle(
            sessions, settings.registrations_per_address_per_hour
        )
        self._gate = LoginGate(
            sessions,
            LoginLimits(
                timedelta(seconds=settings.login_window_seconds),
                settings.login_max_failures,
                settings.login_max_failures_per_account,
            ),
        )
        self._hasher = hasher
        self._access = access_tokens
        self._rotation = rotation
        self._mail = mail
        self._refresh_ttl = timedelta(seconds=settings.refresh_token_ttl_seconds)
        self._reuse_grace = timedelta(seconds=settings.refresh_reuse_grace_seconds)
        self._admin_emails = {e.lower() for e in settings.admin_emails}

    # --- sign-up and sign-in ----------------------------------------------------------------

    async def register(self, email: str, password: str, display_name: str) -> SignedIn:
        violations = Violations()
        normalised = normalise_email(email)
        violations.check(normalised is not None, "email", "is not a valid email address")
        check_password(violations, "password", password)
        check_display_name(violations, "display_name", display_name)
        violations.raise_if_any()
        assert normalised is not None
        address = current_call().client_address
        await self._registrations.precheck(address)
        password_hash = await self._hasher.hash(password)
        try:
            async with self._sessions() as db, db.begin():
                # Serialise first-user detection: the first account becomes admin.
                await store.lock_registrations(db)
                await self._registrations.check(db, address)
                first = not await store.any_user_exists(db)
                role = "admin" if first or normalised in self._admin_emails else "user"
                user = User(
                    email=normalised,
                    password_hash=password_hash,
                    display_name=display_name.strip(),
                    role=role,
                    last_login_time=utcnow(),
                )
                db.add(user)
                await db.flush()
                tokens = await self._open_session(db, user)
                record(db, Action.REGISTER, actor_id=user.id, subject_id=user.id, target=normalised)
                mailed.issue(db, mailed.EMAIL_VERIFICATION, user.id, user.email)
        except IntegrityError as error:
            raise AlreadyExists(
                "an account with this email already exists", "EMAIL_TAKEN"
            ) from error
        self._mail.wake()
        return SignedIn(UserView.of(user), tokens)

    async def login(self, email: str, password: str) -> SignedIn:
        violations = Violations()
        violations.check(bool(email.strip()), "email", "is required")
        violations.check(bool(password), "password", "is required")
        violations.raise_if_any()
        # Not an address: still the key of its failures. PostgreSQL text cannot hold NUL.
        normalised = normalise_email(email) or email.strip().lower().replace("\x00", "\ufffd")
        attempt = await self._gate.admit(normalised, current_call().client_address)
        async with self._sessions() as db:
            user = await store.user_by_email(db, normalised)
        # Unknown email and wrong password take the same path and the same time.
        ok = await self._hasher.verify(password, user.password_hash if user else None)
        if not ok or user is None or user.disabled:
            await self._gate.settle(attempt, user.id if user else None, succeeded=False)
            raise Unauthenticated(_BAD_CREDENTIALS, "INVALID_CREDENTIALS")
        async with self._sessions() as db, db.begin():
            user = await store.user_by_id(db, user.id)
            assert user is not None
            user.last_login_time = utcnow()
            tokens = await self._open_session(db, user)
        await self._gate.settle(attempt, user.id, succeeded=True)
        return SignedIn(UserView.of(user), tokens)

    async def _open_session(self, db: AsyncSession, user: User) -> IssuedTokens:
        call = current_call()
        session = Session(
            user_id=user.id,
            user_agent=call.user_agent[:512],
            peer_address=call.client_address[:64],
            expire_time=utcnow() + self._refresh_ttl,
        )
        db.add(session)
        await db.flush()
        return self._issue(db, user, session)

    def _issue(self, db: AsyncSession, user: User, session: Session) -> IssuedTokens:
        refresh = new_refresh_token()
        db.add(RefreshToken(token_hash=digest(refresh), session_id=session.id))
        return self._tokens(user, session, refresh)

    def _tokens(self, user: User, session: Session, refresh: str) -> IssuedTokens:
        """A fresh access token for `session`, alongside `refresh`."""
        access, access_expires = self._access.issue(user.id, [user.role], session.id)
        return IssuedTokens(access, access_expires, refresh, session.expire_time, session.id)

    # --- refresh and sign-out ---------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> SignedIn:
        if not refresh_token:
            raise InvalidArgument.of([FieldViolation("refresh_token", "is required")])
        signed_in: SignedIn | None = None
        async with self._sessions() as db, db.begin():
            # Locks the token's row: a concurrent refresh with the same token waits here for
            # this transaction, then reads the row as rotated and takes the grace path below.
            found = await store.refresh_token_with_session(db, digest(refresh_token))
            if found is None:
                raise _refresh_token_invalid()
            token, session = found
            if session.revoke_time is not None or session.expire_time <= utcnow():
                raise Unauthenticated("the session has ended; sign in again", "SESSION_REVOKED")
            successor = self._rotation.successor(refresh_token)
            if token.rotate_time is not None and not await self._issued_within_grace(
                db, token, successor
            ):
                # A rotated token came back: someone kept a copy. End the whole session.
                await store.revoke_session(db, session.id, "refresh_token_reused")
                record(
                    db,
                    Action.REFRESH_TOKEN_REUSED,
                    subject_id=session.user_id,
                    target=str(session.id),
                )
            else:
                user = await store.user_by_id(db, session.user_id)
                if user is None or user.disabled:
                    raise Unauthenticated("the account is disabled", "USER_DISABLED")
                if token.rotate_time is None:
                    token.rotate_time = utcnow()
                    db.add(RefreshToken(token_hash=digest(successor), session_id=session.id))
                session.last_use_time = utcnow()
                session.user_agent = current_call().user_agent[:512] or session.user_agent
                session.peer_address = current_call().client_address[:64] or session.peer_address
                signed_in = SignedIn(UserView.of(user), self._tokens(user, session, successor))
        if signed_in is None:  # the reuse was recorded and the session ended: now refuse it
            raise Unauthenticated(
                "this refresh token was already used; the session has been ended",
                "REFRESH_TOKEN_REUSED",
            )
        return signed_in

    async def _issued_within_grace(
        self, db: AsyncSession, token: RefreshToken, successor: str
    ) -> bool:
        """Whether a rotated token presented again is a race (two tabs, a retry after a lost
        response) rather than a stolen copy: it was rotated within the grace window and the
        token issued for it is still the session's current one. A token two or more rotations
        back never qualifies."""
        assert token.rotate_time is not None
        if utcnow() - token.rotate_time > self._reuse_grace:
            return False
        # Locked too, so a concurrent rotation of the successor is seen once it commits.
        issued = await store.refresh_token_locked(db, digest(successor))
        return (
            issued is not None
            and issued.session_id == token.session_id
            and issued.rotate_time is None
        )

    async def logout(self, refresh_token: str, caller: Caller | None) -> None:
        async with self._sessions() as db, db.begin():
            session_id: uuid.UUID | None = None
            user_id: uuid.UUID | None = None
            if refresh_token:
                found = await store.refresh_token_with_session(db, digest(refresh_token))
                if found is None:
                    raise _refresh_token_invalid()
                session_id, user_id = found[1].id, found[1].user_id
            elif caller is not None and caller.session_id:
                session_id, user_id = uuid.UUID(caller.session_id), caller.user_id
            else:
                raise InvalidArgument.of(
                    [FieldViolation("refresh_token", "is required without a valid access token")]
                )
            await store.revoke_session(db, session_id, "logout")
            record(db, Action.LOGOUT, actor_id=user_id, subject_id=user_id, target=str(session_id))

    # --- the user's sessions ----------------------------------------------------------------

    async def list(self, caller: Caller, page: Page) -> Listed[SessionView]:
        """The caller's live sessions, newest first."""
        async with self._sessions() as db:
            rows = await store.list_sessions(db, caller.user_id, page)
        return listed([SessionView.of(row) for row in rows], page, lambda s: [s.id])

    async def revoke(self, caller: Caller, session_id: str) -> None:
        sid = parse_id(session_id)
        async with self._sessions() as db, db.begin():
            session = await db.get(Session, sid) if sid else None
            if session is None or session.user_id != caller.user_id or session.revoke_time:
                raise NotFound("session not found", "SESSION_NOT_FOUND")
            await store.revoke_session(db, session.id, "revoked_by_user")
            record(
                db,
                Action.SESSION_REVOKED,
                actor_id=session.user_id,
                subject_id=session.user_id,
                target=str(session.id),
            )
