"""CreateProviderKey, ListProviderKeys and DeleteProviderKey (users' and projects' own
provider keys), as a mixin of AgentService. The servicer sets `self._provider_keys`."""

from __future__ import annotations

from typing import Any

import grpc
from forge.agents.v1 import agents_pb2
from google.protobuf import empty_pb2

from server.agents.provider_keys import ProviderKeyDraft, ProviderKeys, ProviderKeyView
from server.core.context import current_call
from server.core.errors import FieldViolation, InvalidArgument
from server.core.pagination import PageTokens
from server.core.timestamps import to_timestamp

Context = grpc.aio.ServicerContext[Any, Any]


def _key_to_proto(key: ProviderKeyView) -> agents_pb2.ProviderKey:
    """Never the key itself (INPUT_ONLY): its prefix."""
    return agents_pb2.ProviderKey(
        id=str(key.id),
        provider=key.provider,
        project_id=str(key.project_id) if key.project_id else "",
        key_prefix=key.key_prefix,
        display_name=key.display_name,
        creator_user_id=str(key.creator_id) if key.creator_id else "",
        create_time=to_timestamp(key.create_time),
        last_use_time=to_timestamp(key.last_use_time),
    )


class ProviderKeyRpcs:
    _provider_keys: ProviderKeys
    _pages: PageTokens

    async def CreateProviderKey(
        self, request: agents_pb2.CreateProviderKeyRequest, context: Context
    ) -> agents_pb2.ProviderKey:
        caller = current_call().require_caller()
        if not request.HasField("provider_key"):
            raise InvalidArgument.of([FieldViolation("provider_key", "is required")])
        given = request.provider_key
        created = await self._provider_keys.create(
            caller,
            request.project_id,
            ProviderKeyDraft(given.provider, given.api_key, given.display_name),
        )
        return _key_to_proto(created)

    async def ListProviderKeys(
        self, request: agents_pb2.ListProviderKeysRequest, context: Context
    ) -> agents_pb2.ListProviderKeysResponse:
        caller = current_call().require_caller()
        filters = {"project_id": request.project_id, "user": str(caller.user_id)}
        page = self._pages.page("provider_keys", request.page_size, request.page_token, filters)
        result = await self._provider_keys.list(caller, request.project_id, page)
        return agents_pb2.ListProviderKeysResponse(
            provider_keys=[_key_to_proto(key) for key in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def DeleteProviderKey(
        self, request: agents_pb2.DeleteProviderKeyRequest, context: Context
    ) -> empty_pb2.Empty:
        caller = current_call().require_caller()
        await self._provider_keys.delete(caller, request.project_id, request.provider_key_id)
        return empty_pb2.Empty()
