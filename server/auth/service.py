"""AuthService servicer: protos in, domain calls, protos out."""

from __future__ import annotations

from typing import Any

import grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf import empty_pb2

from server.auth import convert
from server.auth.accounts import Accounts, SignedIn
from server.auth.directory import Directory, require_admin
from server.core.context import current_call
from server.core.errors import FieldViolation, InvalidArgument
from server.core.fieldmask import mask_paths
from server.core.timestamps import from_timestamp

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


def _signed_in(result: SignedIn, response_type: Any) -> Any:
    return response_type(
        user=convert.user_to_proto(result.user), tokens=convert.tokens_to_proto(result.tokens)
    )


class AuthService(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, accounts: Accounts, directory: Directory) -> None:
        self._accounts = accounts
        self._directory = directory

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Context
    ) -> auth_pb2.RegisterResponse:
        result = await self._accounts.register(
            request.email, request.password, request.display_name
        )
        return _signed_in(result, auth_pb2.RegisterResponse)  # type: ignore[no-any-return]

    async def Login(
        self, request: auth_pb2.LoginRequest, context: Context
    ) -> auth_pb2.LoginResponse:
        result = await self._accounts.login(request.email, request.password)
        return _signed_in(result, auth_pb2.LoginResponse)  # type: ignore[no-any-return]

    async def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: Context
    ) -> auth_pb2.RefreshTokenResponse:
        result = await self._accounts.refresh(request.refresh_token)
        return _signed_in(result, auth_pb2.RefreshTokenResponse)  # type: ignore[no-any-return]

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Context) -> empty_pb2.Empty:
        await self._accounts.logout(request.refresh_token, current_call().caller)
        return empty_pb2.Empty()

    async def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: Context
    ) -> auth_pb2.User:
        user = await self._accounts.current_user(current_call().require_caller())
        return convert.user_to_proto(user)

    async def UpdateCurrentUser(
        self, request: auth_pb2.UpdateCurrentUserRequest, context: Context
    ) -> auth_pb2.User:
        paths = mask_paths(request.update_mask.paths, {"display_name"})
        display_name = request.user.display_name if "display_name" in paths else None
        user = await self._accounts.update_profile(current_call().require_caller(), display_name)
        return convert.user_to_proto(user)

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._accounts.change_password(
            current_call().require_caller(), request.current_password, request.new_password
        )
        return empty_pb2.Empty()

    async def RequestPasswordReset(
        self, request: auth_pb2.RequestPasswordResetRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._accounts.request_password_reset(request.email)
        return empty_pb2.Empty()

    async def ResetPassword(
        self, request: auth_pb2.ResetPasswordRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._accounts.reset_password(request.token, request.new_password)
        return empty_pb2.Empty()

    async def VerifyEmail(
        self, request: auth_pb2.VerifyEmailRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._accounts.verify_email(request.token)
        return empty_pb2.Empty()

    async def ListSessions(
        self, request: auth_pb2.ListSessionsRequest, context: Context
    ) -> auth_pb2.ListSessionsResponse:
        caller = current_call().require_caller()
        rows, token = await self._directory.sessions(caller, request.page_size, request.page_token)
        return auth_pb2.ListSessionsResponse(
            sessions=[convert.session_to_proto(s, caller.session_id) for s in rows],
            next_page_token=token,
        )

    async def RevokeSession(
        self, request: auth_pb2.RevokeSessionRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._accounts.revoke_session(current_call().require_caller(), request.session_id)
        return empty_pb2.Empty()

    async def CreateApiKey(
        self, request: auth_pb2.CreateApiKeyRequest, context: Context
    ) -> auth_pb2.CreateApiKeyResponse:
        expire = from_timestamp(request.expire_time) if request.HasField("expire_time") else None
        created = await self._accounts.create_api_key(
            current_call().require_caller(), request.name, expire
        )
        return auth_pb2.CreateApiKeyResponse(
            api_key=convert.api_key_to_proto(created.key), secret=created.secret
        )

    async def ListApiKeys(
        self, request: auth_pb2.ListApiKeysRequest, context: Context
    ) -> auth_pb2.ListApiKeysResponse:
        rows, token = await self._directory.api_keys(
            current_call().require_caller(),
            request.page_size,
            request.page_token,
            request.show_revoked,
        )
        return auth_pb2.ListApiKeysResponse(
            api_keys=[convert.api_key_to_proto(k) for k in rows], next_page_token=token
        )

    async def RevokeApiKey(
        self, request: auth_pb2.RevokeApiKeyRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._accounts.revoke_api_key(current_call().require_caller(), request.api_key_id)
        return empty_pb2.Empty()

    async def ListUsers(
        self, request: auth_pb2.ListUsersRequest, context: Context
    ) -> auth_pb2.ListUsersResponse:
        role = convert.ROLE_FROM_PROTO.get(request.role) if request.role else None
        disabled = request.disabled if request.HasField("disabled") else None
        rows, token = await self._directory.users(
            current_call().require_caller(),
            request.page_size,
            request.page_token,
            request.query,
            role,
            disabled,
        )
        return auth_pb2.ListUsersResponse(
            users=[convert.user_to_proto(u) for u in rows], next_page_token=token
        )

    async def UpdateUser(
        self, request: auth_pb2.UpdateUserRequest, context: Context
    ) -> auth_pb2.User:
        caller = current_call().require_caller()
        require_admin(caller)
        paths = mask_paths(request.update_mask.paths, {"role", "disabled", "display_name"})
        role: str | None = None
        if "role" in paths:
            role = convert.ROLE_FROM_PROTO.get(request.user.role)
            if role is None:
                raise InvalidArgument.of(
                    [FieldViolation("user.role", "must be ROLE_USER or ROLE_ADMIN")]
                )
        user = await self._accounts.update_user(
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
        rows, token = await self._directory.audit_events(
            current_call().require_caller(),
            request.page_size,
            request.page_token,
            request.user_id,
            convert.action_from_proto(request.action),
        )
        return auth_pb2.ListAuditEventsResponse(
            audit_events=[convert.audit_event_to_proto(e) for e in rows], next_page_token=token
        )

    async def GetSystemStats(
        self, request: auth_pb2.GetSystemStatsRequest, context: Context
    ) -> auth_pb2.SystemStats:
        counts = await self._directory.counts(current_call().require_caller())
        return auth_pb2.SystemStats(
            user_count=counts.users,
            disabled_user_count=counts.disabled_users,
            project_count=counts.projects,
            conversation_count=counts.conversations,
            message_count=counts.messages,
            sandbox_count=counts.live_sandboxes,
            artifact_count=counts.artifacts,
            input_tokens=counts.input_tokens,
            output_tokens=counts.output_tokens,
        )
