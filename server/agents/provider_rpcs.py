"""ListProviders and UpdateProvider (providers switched on and off by admins), as a mixin of
AgentService."""

from __future__ import annotations

from typing import Any

import grpc
from forge.agents.v1 import agents_pb2

from server.agents import convert
from server.agents.providers import MUTABLE_FIELDS, Providers
from server.core.context import current_call
from server.core.errors import FieldViolation, InvalidArgument
from server.core.fieldmask import update_paths

Context = grpc.aio.ServicerContext[Any, Any]


class ProviderRpcs:
    _providers: Providers

    async def ListProviders(
        self, request: agents_pb2.ListProvidersRequest, context: Context
    ) -> agents_pb2.ListProvidersResponse:
        caller = current_call().require_caller()
        providers = await self._providers.list(caller)
        return agents_pb2.ListProvidersResponse(
            providers=[convert.provider_to_proto(provider) for provider in providers]
        )

    async def UpdateProvider(
        self, request: agents_pb2.UpdateProviderRequest, context: Context
    ) -> agents_pb2.Provider:
        caller = current_call().require_caller()
        if not request.HasField("provider"):
            raise InvalidArgument.of([FieldViolation("provider", "is required")])
        if not request.provider.name:
            raise InvalidArgument.of([FieldViolation("provider.name", "is required")])
        # `enabled` is the only field that can change, and `false` is not told apart from
        # unset in a proto3 bool: an empty mask therefore means `enabled`, whatever its value.
        paths = (
            update_paths(request.update_mask.paths, MUTABLE_FIELDS, request.provider)
            if request.update_mask.paths
            else {"enabled"}
        )
        enabled = request.provider.enabled if "enabled" in paths else None
        provider = await self._providers.update(caller, request.provider.name, enabled)
        return convert.provider_to_proto(provider)
