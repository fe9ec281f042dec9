"""Calls on provider keys (users' and projects' own), for the tests."""

from __future__ import annotations

import uuid

import grpc
from forge.agents.v1 import agents_pb2

from tests.agents.support import DEADLINE, stub
from tests.support.accounts import Account


def own_key(label: str = "user") -> str:
    return f"sk-{label}-{uuid.uuid4().hex}"


async def create_key(
    channel: grpc.aio.Channel,
    account: Account,
    provider: str,
    api_key: str,
    *,
    project_id: str = "",
    display_name: str = "",
    request_id: str = "",
) -> agents_pb2.ProviderKey:
    return await stub(channel).CreateProviderKey(
        agents_pb2.CreateProviderKeyRequest(
            project_id=project_id,
            provider_key=agents_pb2.ProviderKey(
                provider=provider, api_key=api_key, display_name=display_name
            ),
            request_id=request_id,
        ),
        metadata=account.metadata,
        timeout=DEADLINE,
    )


async def list_keys(
    channel: grpc.aio.Channel, account: Account, project_id: str = ""
) -> list[agents_pb2.ProviderKey]:
    listed = await stub(channel).ListProviderKeys(
        agents_pb2.ListProviderKeysRequest(project_id=project_id),
        metadata=account.metadata,
        timeout=DEADLINE,
    )
    return list(listed.provider_keys)


async def delete_key(
    channel: grpc.aio.Channel, account: Account, key_id: str, project_id: str = ""
) -> None:
    await stub(channel).DeleteProviderKey(
        agents_pb2.DeleteProviderKeyRequest(project_id=project_id, provider_key_id=key_id),
        metadata=account.metadata,
        timeout=DEADLINE,
    )
