"""ListProviders and UpdateProvider (providers switched on and off by admins), as a mixin of
AgentService."""

from __future__ import annotations

from typing import Any

import grpc
from forge.agents.v1 import agents_pb2

from server.core.errors import Unimplemented

Context = grpc.aio.ServicerContext[Any, Any]


class ProviderRpcs:
    async def ListProviders(
        self, request: agents_pb2.ListProvidersRequest, context: Context
    ) -> agents_pb2.ListProvidersResponse:
        raise Unimplemented("ListProviders is not built yet", "NOT_BUILT")

    async def UpdateProvider(
        self, request: agents_pb2.UpdateProviderRequest, context: Context
    ) -> agents_pb2.Provider:
        raise Unimplemented("UpdateProvider is not built yet", "NOT_BUILT")
