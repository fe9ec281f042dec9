"""AuthService servicer: protos in, domain calls, protos out; page tokens are handled here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf import empty_pb2

from server.auth import convert
from server.auth.admin import Admin, require_admin
from server.auth.api_keys import ApiKeys
from server.auth.directory import Directory, audit_scope
from server.auth.limits import UserLimitsBook
from server.auth.mailed import EmailVerification
from server.auth.passwords import Passwords
from server.auth.profile import Profile
from server.auth.sessions import Sessions
from server.core.context import current_call
from server.core.errors import FieldViolation, InvalidArgument
from server.core.fieldmask import update_paths
from server.core.limits import LIMIT_NAMES
from server.core.pagination import PageTokens
from server.core.timestamps import timestamp_argument

Context = grpc.aio.ServicerContext[Any, Any]

PUBLIC_METHODS = (
    "Register",
    "Login",
    "RefreshToken",
    "Logout",
    "RequestPasswordReset",
    "ResetPassword",
    "VerifyEmail",
)


@dataclass(frozen=True)
class AuthDomain:
    """The domain parts the servicer talks to, one per concern."""

    sessions: Sessions
    profile: Profile
    passwords: Passwords
    verification: EmailVerification
    api_keys: ApiKeys
    admin: Admin
    directory: Directory
    limits: UserLimitsBook


class AuthService(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, domain: AuthDomain, page_tokens: PageTokens) -> None:
        self._sessions = domain.sessions
        self._profile = domain.profile
        self._passwords = domain.passwords
        self._verification = domain.verification
        self._api_keys = domain.api_keys
        self._admin = domain.admin
        self._directory = domain.directory
        self._limits = domain.limits
        self._pages = page_tokens

    # --- sign-up, sign-in, sessions ---------------------------------------------------

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Context
    ) -> auth_pb2.RegisterResponse:
        result = await self._sessions.register(
            request.email, request.password, request.display_name
        )
        return convert.signed_in(result, auth_pb2.RegisterResponse)

    async def Login(
        self, request: auth_pb2.LoginRequest, context: Context
    ) -> auth_pb2.LoginResponse:
        result = await self._sessions.login(request.email, request.password)
        return convert.signed_in(result, auth_pb2.LoginResponse)

    async def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: Context
    ) -> auth_pb2.RefreshTokenResponse:
        result = await self._sessions.refresh(request.refresh_token)
        return convert.signed_in(result, auth_pb2.RefreshTokenResponse)

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Context) -> empty_pb2.Empty:
        await self._sessions.logout(request.refresh_token, current_call().caller)
        return empty_pb2.Empty()

    async def ListSessions(
        self, request: auth_pb2.ListSessionsRequest, context: Context
    ) -> auth_pb2.ListSessionsResponse:
        caller = current_call().require_caller()
        page = self._pages.page(
            "sessions", request.page_size, request.page_token, {"user": str(caller.user_id)}
        )
        result = await self._sessions.list(caller, page)
        return auth_pb2.ListSessionsResponse(
            sessions=[convert.session_to_proto(s, caller.session_id) for s in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def RevokeSession(
        self, request: auth_pb2.RevokeSessionRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._sessions.revoke(current_call().require_caller(), request.session_id)
        return empty_pb2.Empty()

    # --- the signed-in user -----------------------------------------------------------

    async def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: Context
    ) -> auth_pb2.User:
        user = await self._profile.current_user(current_call())
        return convert.user_to_proto(user)

    async def UpdateCurrentUser(
        self, request: auth_pb2.UpdateCurrentUserRequest, context: Context
    ) -> auth_pb2.User:
        paths = update_paths(request.update_mask.paths, {"display_name"}, request.user)
        display_name = request.user.display_name if "display_name" in paths else None
        user = await self._profile.update(current_call().require_caller(), display_name)
        return convert.user_to_proto(user)

    # --- passwords and mailed tokens --------------------------------------------------

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._passwords.change(
            current_call().require_caller(), request.current_password, request.new_password
        )
        return empty_pb2.Empty()

    async def RequestPasswordReset(
        self, request: auth_pb2.RequestPasswordResetRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._passwords.request_reset(request.email)
        return empty_pb2.Empty()

    async def ResetPassword(
        self, request: auth_pb2.ResetPasswordRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._passwords.reset(request.token, request.new_password)
        return empty_pb2.Empty()

    async def VerifyEmail(
        self, request: auth_pb2.VerifyEmailRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._verification.verify(request.token)
        return empty_pb2.Empty()

    # --- API keys ---------------------------------------------------------------------

    async def CreateApiKey(
        self, request: auth_pb2.CreateApiKeyRequest, context: Context
    ) -> auth_pb2.CreateApiKeyResponse:
        expire = (
            timestamp_argument(request.expire_time, "expire_time")
            if request.HasField("expire_time")
            else None
        )
        created = await self._api_keys.create(
            current_call().require_caller(), request.name, expire, list(request.scopes)
        )
        return auth_pb2.CreateApiKeyResponse(
            api_key=convert.api_key_to_proto(created.key), secret=created.secret
        )

    async def ListApiKeys(
        self, request: auth_pb2.ListApiKeysRequest, context: Context
    ) -> auth_pb2.ListApiKeysResponse:
        caller = current_call().require_caller()
        filters = {"user": str(caller.user_id), "revoked": request.show_revoked}
        page = self._pages.page("api_keys", request.page_size, request.page_token, filters)
        result = await self._api_keys.list(caller, page, request.show_revoked)
        return auth_pb2.ListApiKeysResponse(
            api_keys=[convert.api_key_to_proto(k) for k in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def RevokeApiKey(
        self, request: auth_pb2.RevokeApiKeyRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._api_keys.revoke(current_call().require_caller(), request.api_key_id)
        return empty_pb2.Empty()

    # --- administration ---------------------------------------------------------------

    async def ListUsers(
        self, request: auth_pb2.ListUsersRequest, context: Context
    ) -> auth_pb2.ListUsersResponse:
        caller = current_call().require_caller()
        require_admin(caller)  # before the page token is read, as for every admin call
        role = convert.ROLE_FROM_PROTO.get(request.role) if request.role else None
        disabled = request.disabled if request.HasField("disabled") else None
        filters = {"q": request.query, "role": role, "disabled": disabled}
        page = self._pages.page("users", request.page_size, request.page_token, filters)
        result = await self._directory.users(caller, page, request.query, role, disabled)
        return auth_pb2.ListUsersResponse(
            users=[convert.user_to_proto(u) for u in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def UpdateUser(
        self, request: auth_pb2.UpdateUserRequest, context: Context
    ) -> auth_pb2.User:
        caller = current_call().require_caller()
        require_admin(caller)
        paths = update_paths(
            request.update_mask.paths, {"role", "disabled", "display_name"}, request.user
        )
        role: str | None = None
        if "role" in paths:
            role = convert.ROLE_FROM_PROTO.get(request.user.role)
            if role is None:
                raise InvalidArgument.of(
                    [FieldViolation("user.role", "must be ROLE_USER or ROLE_ADMIN")]
                )
        user = await self._admin.update_user(
            caller,
            request.user.id,
            role=role,
            disabled=request.user.disabled if "disabled" in paths else None,
            display_name=request.user.display_name if "display_name" in paths else None,
        )
        return convert.user_to_proto(user)

    async def ListAuditEvents(
        self, request: auth_pb2.ListAuditEventsRequest, context: Context
    ) -> auth_pb2.ListAuditEventsResponse:
        scope = audit_scope(
            current_call().require_caller(),
            request.user_id,
            convert.action_from_proto(request.action),
        )
        page = self._pages.page(
            "audit_events", request.page_size, request.page_token, scope.filters
        )
        result = await self._directory.audit_events(scope, page)
        return auth_pb2.ListAuditEventsResponse(
            audit_events=[convert.audit_event_to_proto(e) for e in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def GetSystemStats(
        self, request: auth_pb2.GetSystemStatsRequest, context: Context
    ) -> auth_pb2.SystemStats:
        counts = await self._directory.counts(current_call().require_caller())
        return convert.system_stats_to_proto(counts)

    # --- fair shares ------------------------------------------------------------------

    async def GetUserLimits(
        self, request: auth_pb2.GetUserLimitsRequest, context: Context
    ) -> auth_pb2.UserLimits:
        view = await self._limits.get(current_call().require_caller(), request.user_id)
        return convert.limits_to_proto(view)

    async def UpdateUserLimits(
        self, request: auth_pb2.UpdateUserLimitsRequest, context: Context
    ) -> auth_pb2.UserLimits:
        caller = current_call().require_caller()
        require_admin(caller)
        paths = update_paths(request.update_mask.paths, LIMIT_NAMES, request.limits)
        view = await self._limits.update(
            caller, request.limits.user_id, convert.limit_changes(request.limits, paths)
        )
        return convert.limits_to_proto(view)
