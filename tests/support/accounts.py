"""Signing up and in through the real AuthService."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf import field_mask_pb2

PASSWORD = "Corr3ct-Horse"
_counter = itertools.count()


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{next(_counter)}-{id(_counter) % 9973}@example.com"


@dataclass
class Account:
    user_id: str
    email: str
    password: str
    access_token: str
    refresh_token: str
    session_id: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.access_token}"),)


def _account(
    response: auth_pb2.RegisterResponse | auth_pb2.LoginResponse, password: str
) -> Account:
    return Account(
        user_id=response.user.id,
        email=response.user.email,
        password=password,
        access_token=response.tokens.access_token,
        refresh_token=response.tokens.refresh_token,
        session_id=response.tokens.session_id,
    )


async def register(
    channel: grpc.aio.Channel,
    email: str | None = None,
    password: str = PASSWORD,
    display_name: str = "Test User",
) -> Account:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    response = await stub.Register(
        auth_pb2.RegisterRequest(
            email=email or unique_email(), password=password, display_name=display_name
        ),
        timeout=30,
    )
    return _account(response, password)


async def login(channel: grpc.aio.Channel, email: str, password: str = PASSWORD) -> Account:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    response = await stub.Login(auth_pb2.LoginRequest(email=email, password=password), timeout=30)
    return _account(response, password)


async def set_disabled(
    channel: grpc.aio.Channel, admin: Account, user: Account, disabled: bool
) -> None:
    """An admin disables `user` (which ends its sessions) or enables it again."""
    await auth_pb2_grpc.AuthServiceStub(channel).UpdateUser(
        auth_pb2.UpdateUserRequest(
            user=auth_pb2.User(id=user.user_id, disabled=disabled),
            update_mask=field_mask_pb2.FieldMask(paths=["disabled"]),
        ),
        metadata=admin.metadata,
        timeout=10,
    )
