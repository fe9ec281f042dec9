"""CreateProviderKey, ListProviderKeys and DeleteProviderKey (users' and projects' own
provider keys), as a mixin of AgentService."""

from __future__ import annotations

from typing import Any

import grpc
from forge.agents.v1 import agents_pb2
from google.protobuf import empty_pb2

from server.core.errors import Unimplemented

Context = grpc.aio.ServicerContext[Any, Any]


class ProviderKeyRpcs:
    async def CreateProviderKey(
        self, request: agents_pb2.CreateProviderKeyRequest, context: Context
    ) -> agents_pb2.ProviderKey:
        raise Unimplemented("CreateProviderKey is not built yet", "NOT_BUILT")

    async def ListProviderKeys(
        self, request: agents_pb2.ListProviderKeysRequest, context: Context
    ) -> agents_pb2.ListProviderKeysResponse:
        raise Unimplemented("ListProviderKeys is not built yet", "NOT_BUILT")

    async def DeleteProviderKey(
        self, request: agents_pb2.DeleteProviderKeyRequest, context: Context
    ) -> empty_pb2.Empty:
        raise Unimplemented("DeleteProviderKey is not built yet", "NOT_BUILT")
