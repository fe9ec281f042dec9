"""Accounts, sessions and credentials: the AuthService domain logic."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.audit import Action, record
from server.auth.emails import normalise_email
from server.auth.mail import MailSender, enqueue
from server.auth.passwords import PasswordHasher, password_problems
from server.auth.tokens import (
    AccessTokens,
    digest,
    new_api_key,
    new_one_time_token,
    new_refresh_token,
)
from server.config import Settings
from server.core.context import Caller, current_call
from server.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Violations,
)
from server.core.ids import parse_id
from server.core.timestamps import utcnow
from server.db.models import ApiKey, OneTimeToken, RefreshToken, Session, User

log = logging.getLogger(__name__)

LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_MAX_FAILURES = 10
PASSWORD_RESET_TTL = timedelta(hours=1)
EMAIL_VERIFY_TTL = timedelta(hours=24)
API_KEY_TOUCH_EVERY = timedelta(minutes=1)
MAX_DISPLAY_NAME = 100
MAX_API_KEY_NAME = 100

PURPOSE_RESET = "password_reset"
PURPOSE_VERIFY = "email_verify"

_BAD_CREDENTIALS = "email or password is incorrect"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    access_expire_time: datetime
    refresh_token: str
    refresh_expire_time: datetime
    session_id: uuid.UUID


@dataclass(frozen=True)
class SignedIn:
    user: User
    tokens: IssuedTokens


@dataclass(frozen=True)
class CreatedApiKey:
    key: ApiKey
    secret: str


def _password_violations(field: str, password: str, violations: Violations) -> None:
    for problem in password_problems(password):
        violations.add(field, problem)


class Accounts:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        hasher: PasswordHasher,
        access_tokens: AccessTokens,
        mail: MailSender,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._hasher = hasher
        self._access = access_tokens
        self._mail = mail
        self._refresh_ttl = timedelta(seconds=settings.refresh_token_ttl_seconds)
        self._admin_emails = {e.lower() for e in settings.admin_emails}

    # --- sign-up and sign-in ----------------------------------------------------------------

    async def register(self, email: str, password: str, display_name: str) -> SignedIn:
        violations = Violations()
        normalised = normalise_email(email)
        violations.check(normalised is not None, "email", "is not a valid email address")
        _password_violations("password", password, violations)
        violations.check(
            len(display_name) <= MAX_DISPLAY_NAME,
            "display_name",
            f"must be at most {MAX_DISPLAY_NAME} characters",
        )
        violations.raise_if_any()
        assert normalised is not None
        password_hash = await self._hasher.hash(password)
        verify_token = new_one_time_token()
        try:
            async with self._sessions() as db, db.begin():
                # Serialise first-user detection: the first account becomes admin.
                await db.execute(_advisory_lock("forge.register"))
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
                self._queue_verification(db, user, verify_token)
        except IntegrityError as error:
            raise AlreadyExists(
                "an account with this email already exists", "EMAIL_TAKEN"
            ) from error
        self._mail.wake()
        return SignedIn(user, tokens)

    async def login(self, email: str, password: str) -> SignedIn:
        violations = Violations()
        violations.check(bool(email.strip()), "email", "is required")
        violations.check(bool(password), "password", "is required")
        violations.raise_if_any()
        normalised = normalise_email(email) or email.strip().lower()
        peer = current_call().client_address
        limited: ResourceExhausted | None = None
        async with self._sessions() as db, db.begin():
            failures, oldest = await store.recent_login_failures(db, normalised, peer, LOGIN_WINDOW)
            if failures >= LOGIN_MAX_FAILURES:
                record(db, Action.LOGIN_RATE_LIMITED, target=normalised)
                retry_after = (oldest + LOGIN_WINDOW - utcnow()) if oldest else LOGIN_WINDOW
                limited = ResourceExhausted(
                    "too many failed sign-in attempts; try again later",
                    "LOGIN_RATE_LIMITED",
                    retry_after=max(retry_after, timedelta(seconds=1)),
                )
            user = await store.user_by_email(db, normalised)
        if limited is not None:
            raise limited
        # Unknown email and wrong password take the same path and the same time.
        ok = await self._hasher.verify(password, user.password_hash if user else None)
        if not ok or user is None or user.disabled:
            async with self._sessions() as db, db.begin():
                record(
                    db, Action.LOGIN_FAILED, subject_id=user.id if user else None, target=normalised
                )
            raise Unauthenticated(_BAD_CREDENTIALS, "INVALID_CREDENTIALS")
        async with self._sessions() as db, db.begin():
            user = await store.user_by_id(db, user.id)
            assert user is not None
            user.last_login_time = utcnow()
            tokens = await self._open_session(db, user)
            record(
                db, Action.LOGIN_SUCCEEDED, actor_id=user.id, subject_id=user.id, target=normalised
            )
        return SignedIn(user, tokens)

    async def _open_session(self, db: AsyncSession, user: User) -> IssuedTokens:
        call = current_call()
        now = utcnow()
        session = Session(
            user_id=user.id,
            user_agent=call.user_agent[:512],
            peer_address=call.client_address[:64],
            expire_time=now + self._refresh_ttl,
        )
        db.add(session)
        await db.flush()
        return self._issue(db, user, session)

    def _issue(self, db: AsyncSession, user: User, session: Session) -> IssuedTokens:
        refresh = new_refresh_token()
        db.add(RefreshToken(token_hash=digest(refresh), session_id=session.id))
        access, access_expires = self._access.issue(user.id, [user.role], session.id)
        return IssuedTokens(access, access_expires, refresh, session.expire_time, session.id)

    async def refresh(self, refresh_token: str) -> SignedIn:
        if not refresh_token:
            raise InvalidArgument.of([FieldViolation("refresh_token", "is required")])
        invalid = Unauthenticated("the refresh token is not valid", "REFRESH_TOKEN_INVALID")
        async with self._sessions() as db, db.begin():
            found = await store.refresh_token_with_session(db, digest(refresh_token))
            if found is None:
                raise invalid
            token, session = found
            if session.revoke_time is not None or session.expire_time <= utcnow():
                raise Unauthenticated("the session has ended; sign in again", "SESSION_REVOKED")
            reused = token.rotate_time is not None
            if reused:
                # A rotated token came back: someone kept a copy. End the whole session.
                await store.revoke_session(db, session.id, "refresh_token_reused")
                record(
                    db,
                    Action.REFRESH_TOKEN_REUSED,
                    subject_id=session.user_id,
                    target=str(session.id),
                )
        if reused:
            raise Unauthenticated(
                "this refresh token was already used; the session has been ended",
                "REFRESH_TOKEN_REUSED",
            )
        async with self._sessions() as db, db.begin():
            found = await store.refresh_token_with_session(db, digest(refresh_token))
            if found is None or found[0].rotate_time is not None:
                raise invalid  # rotated concurrently by another request
            token, session = found
            user = await store.user_by_id(db, session.user_id)
            if user is None or user.disabled:
                raise Unauthenticated("the account is disabled", "USER_DISABLED")
            token.rotate_time = utcnow()
            session.last_use_time = utcnow()
            session.user_agent = current_call().user_agent[:512] or session.user_agent
            session.peer_address = current_call().client_address[:64] or session.peer_address
            tokens = self._issue(db, user, session)
        return SignedIn(user, tokens)

    async def logout(self, refresh_token: str, caller: Caller | None) -> None:
        async with self._sessions() as db, db.begin():
            session_id: uuid.UUID | None = None
            user_id: uuid.UUID | None = None
            if refresh_token:
                found = await store.refresh_token_with_session(db, digest(refresh_token))
                if found is None:
                    raise Unauthenticated("the refresh token is not valid", "REFRESH_TOKEN_INVALID")
                session_id, user_id = found[1].id, found[1].user_id
            elif caller is not None and caller.session_id:
                session_id, user_id = uuid.UUID(caller.session_id), caller.user_id
            else:
                raise InvalidArgument.of(
                    [FieldViolation("refresh_token", "is required without an access token")]
                )
            await store.revoke_session(db, session_id, "logout")
            record(db, Action.LOGOUT, actor_id=user_id, subject_id=user_id, target=str(session_id))

    # --- the signed-in user -------------------------------------------------------------------

    async def current_user(self, caller: Caller) -> User:
        async with self._sessions() as db:
            user = await store.user_by_id(db, caller.user_id)
        if user is None:
            raise Unauthenticated("the account no longer exists", "USER_NOT_FOUND")
        return user

    async def update_profile(self, caller: Caller, display_name: str | None) -> User:
        if display_name is not None and len(display_name) > MAX_DISPLAY_NAME:
            raise InvalidArgument.of(
                [
                    FieldViolation(
                        "user.display_name", f"must be at most {MAX_DISPLAY_NAME} characters"
                    )
                ]
            )
        async with self._sessions() as db, db.begin():
            user = await store.user_by_id(db, caller.user_id, lock=True)
            if user is None:
                raise Unauthenticated("the account no longer exists", "USER_NOT_FOUND")
            if display_name is not None:
                user.display_name = display_name.strip()
                record(db, Action.PROFILE_UPDATED, actor_id=user.id, subject_id=user.id)
            await db.flush()
            await db.refresh(user)
        return user

    async def change_password(self, caller: Caller, current: str, new: str) -> None:
        violations = Violations()
        violations.check(bool(current), "current_password", "is required")
        _password_violations("new_password", new, violations)
        violations.raise_if_any()
        user = await self.current_user(caller)
        if not await self._hasher.verify(current, user.password_hash):
            raise PermissionDenied("the current password is incorrect", "WRONG_PASSWORD")
        new_hash = await self._hasher.hash(new)
        keep = uuid.UUID(caller.session_id) if caller.session_id else None
        async with self._sessions() as db, db.begin():
            locked = await store.user_by_id(db, user.id, lock=True)
            assert locked is not None
            locked.password_hash = new_hash
            await store.revoke_user_sessions(db, user.id, "password_changed", keep=keep)
            record(db, Action.PASSWORD_CHANGED, actor_id=user.id, subject_id=user.id)

    # --- mailed tokens -----------------------------------------------------------------------

    def _queue_verification(self, db: AsyncSession, user: User, token: str) -> None:
        db.add(
            OneTimeToken(
                user_id=user.id,
                purpose=PURPOSE_VERIFY,
                token_hash=digest(token),
                expire_time=utcnow() + EMAIL_VERIFY_TTL,
            )
        )
        enqueue(
            db,
            user.email,
            "Verify your Forge email address",
            "Welcome to Forge.\n\nVerify your email address with this token (valid 24 hours):\n\n"
            f"{token}\n",
        )

    async def request_password_reset(self, email: str) -> None:
        """Answers the same whether or not the address has an account."""
        normalised = normalise_email(email)
        if normalised is None:
            raise InvalidArgument.of([FieldViolation("email", "is not a valid email address")])
        token = new_one_time_token()
        async with self._sessions() as db, db.begin():
            user = await store.user_by_email(db, normalised)
            record(
                db,
                Action.PASSWORD_RESET_REQUESTED,
                subject_id=user.id if user else None,
                target=normalised,
            )
            if user is None or user.disabled:
                return
            db.add(
                OneTimeToken(
                    user_id=user.id,
                    purpose=PURPOSE_RESET,
                    token_hash=digest(token),
                    expire_time=utcnow() + PASSWORD_RESET_TTL,
                )
            )
            enqueue(
                db,
                user.email,
                "Reset your Forge password",
                "Someone asked to reset the password of your Forge account.\n\n"
                f"Reset token (valid 1 hour, single use):\n\n{token}\n\n"
                "If it was not you, ignore this mail.\n",
            )
        self._mail.wake()

    async def _use_token(self, db: AsyncSession, token: str, purpose: str) -> OneTimeToken:
        found = await store.one_time_token(db, digest(token), purpose) if token else None
        if found is None or found.use_time is not None or found.expire_time <= utcnow():
            raise InvalidArgument.of(
                [FieldViolation("token", "is invalid, expired or already used")],
                reason="TOKEN_INVALID",
            )
        found.use_time = utcnow()
        return found

    async def reset_password(self, token: str, new_password: str) -> None:
        violations = Violations()
        violations.check(bool(token), "token", "is required")
        _password_violations("new_password", new_password, violations)
        violations.raise_if_any()
        new_hash = await self._hasher.hash(new_password)
        async with self._sessions() as db, db.begin():
            used = await self._use_token(db, token, PURPOSE_RESET)
            user = await store.user_by_id(db, used.user_id, lock=True)
            assert user is not None
            user.password_hash = new_hash
            await store.revoke_user_sessions(db, user.id, "password_reset")
            record(db, Action.PASSWORD_RESET, actor_id=user.id, subject_id=user.id)

    async def verify_email(self, token: str) -> None:
        if not token:
            raise InvalidArgument.of([FieldViolation("token", "is required")])
        async with self._sessions() as db, db.begin():
            used = await self._use_token(db, token, PURPOSE_VERIFY)
            user = await store.user_by_id(db, used.user_id, lock=True)
            assert user is not None
            user.email_verified = True
            record(db, Action.EMAIL_VERIFIED, actor_id=user.id, subject_id=user.id)

    # --- sessions and API keys ----------------------------------------------------------------

    async def revoke_session(self, caller: Caller, session_id: str) -> None:
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

    async def create_api_key(
        self, caller: Caller, name: str, expire_time: datetime | None
    ) -> CreatedApiKey:
        violations = Violations()
        violations.check(
            len(name) <= MAX_API_KEY_NAME, "name", f"must be at most {MAX_API_KEY_NAME} characters"
        )
        violations.check(
            expire_time is None or expire_time > utcnow(), "expire_time", "must be in the future"
        )
        violations.raise_if_any()
        if caller.api_key_id is not None:
            raise PermissionDenied(
                "API keys cannot create API keys; sign in", "API_KEY_NOT_ALLOWED"
            )
        created = new_api_key()
        async with self._sessions() as db, db.begin():
            key = ApiKey(
                user_id=caller.user_id,
                name=name.strip(),
                prefix=created.prefix,
                secret_hash=created.secret_hash,
                expire_time=expire_time,
            )
            db.add(key)
            await db.flush()
            await db.refresh(key)
            record(
                db,
                Action.API_KEY_CREATED,
                actor_id=key.user_id,
                subject_id=key.user_id,
                target=str(key.id),
                details={"prefix": key.prefix},
            )
        return CreatedApiKey(key, created.secret)

    async def revoke_api_key(self, caller: Caller, api_key_id: str) -> None:
        kid = parse_id(api_key_id)
        async with self._sessions() as db, db.begin():
            key = await db.get(ApiKey, kid, with_for_update=True) if kid else None
            if key is None or key.user_id != caller.user_id or key.revoke_time is not None:
                raise NotFound("API key not found", "API_KEY_NOT_FOUND")
            key.revoke_time = utcnow()
            record(
                db,
                Action.API_KEY_REVOKED,
                actor_id=key.user_id,
                subject_id=key.user_id,
                target=str(key.id),
            )

    # --- administration -----------------------------------------------------------------------

    async def update_user(
        self,
        admin: Caller,
        user_id: str,
        role: str | None,
        disabled: bool | None,
        display_name: str | None,
    ) -> User:
        uid = parse_id(user_id)
        if uid is None:
            raise NotFound("user not found", "USER_NOT_FOUND")
        if uid == admin.user_id and (role is not None or disabled is not None):
            raise FailedPrecondition(
                "admins cannot change their own role or disable themselves", "CANNOT_MODIFY_SELF"
            )
        async with self._sessions() as db, db.begin():
            user = await store.user_by_id(db, uid, lock=True)
            if user is None:
                raise NotFound("user not found", "USER_NOT_FOUND")
            actor = admin.user_id
            if role is not None and role != user.role:
                record(
                    db,
                    Action.ROLE_CHANGED,
                    actor_id=actor,
                    subject_id=user.id,
                    target=user.email,
                    details={"from": user.role, "to": role},
                )
                user.role = role
            if disabled is not None and disabled != user.disabled:
                user.disabled = disabled
                record(
                    db,
                    Action.USER_DISABLED if disabled else Action.USER_ENABLED,
                    actor_id=actor,
                    subject_id=user.id,
                    target=user.email,
                )
            if display_name is not None:
                user.display_name = display_name.strip()[:MAX_DISPLAY_NAME]
            await db.flush()
            await db.refresh(user)
        return user


def _advisory_lock(name: str) -> Select[tuple[object]]:
    return select(func.pg_advisory_xact_lock(func.hashtext(name)))
