"""grpc's health service with `List` too (grpc's own leaves it unimplemented)."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer


class HealthService(HealthServicer):  # type: ignore[misc]  # (grpc ships it untyped)
    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        """Every service with a status ("" is the server as a whole)."""
        # `_server_status` is the servicer's one table of statuses, as Check reads it.
        statuses = dict(self._server_status)
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in statuses.items()
            }
        )
