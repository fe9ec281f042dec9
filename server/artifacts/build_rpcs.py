"""ArtifactService's build and preview RPCs (a part of the servicer, service.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from forge.artifacts.v1 import artifacts_pb2
from google.api import httpbody_pb2

from server.artifacts import convert
from server.artifacts.builds import Builds
from server.artifacts.manager import checked_artifact_id
from server.artifacts.previews import HEADERS, Previews
from server.core.context import current_call
from server.core.pagination import PageTokens
from server.core.timestamps import to_timedelta, to_timestamp

Context = grpc.aio.ServicerContext[Any, Any]


class BuildRpcs:
    _builds: Builds
    _previews: Previews
    _pages: PageTokens

    async def BuildArtifact(
        self, request: artifacts_pb2.BuildArtifactRequest, context: Context
    ) -> AsyncIterator[artifacts_pb2.BuildEvent]:
        events = self._builds.build(
            current_call().require_caller(),
            request.artifact_id,
            request.version,
            request.entry_point,
            request.rebuild,
        )
        async for event in events:
            yield convert.build_event_to_proto(event)

    async def GetBuild(
        self, request: artifacts_pb2.GetBuildRequest, context: Context
    ) -> artifacts_pb2.Build:
        build = await self._builds.get(current_call().require_caller(), request.build_id)
        return convert.build_to_proto(build)

    async def ListBuilds(
        self, request: artifacts_pb2.ListBuildsRequest, context: Context
    ) -> artifacts_pb2.ListBuildsResponse:
        caller = current_call().require_caller()
        aid = checked_artifact_id(request.artifact_id)
        page = self._pages.page(
            "builds", request.page_size, request.page_token, {"artifact": str(aid)}
        )
        result = await self._builds.list(caller, aid, page)
        return artifacts_pb2.ListBuildsResponse(
            builds=[convert.build_to_proto(build) for build in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def GetPreviewUrl(
        self, request: artifacts_pb2.GetPreviewUrlRequest, context: Context
    ) -> artifacts_pb2.GetPreviewUrlResponse:
        ttl = to_timedelta(request.ttl) if request.HasField("ttl") else None
        link = await self._previews.link(
            current_call().require_caller(), request.artifact_id, request.version, ttl
        )
        return artifacts_pb2.GetPreviewUrlResponse(
            url=link.url,
            expire_time=to_timestamp(link.expire_time),
            build_id=str(link.build_id or ""),
        )

    async def GetPreviewFile(
        self, request: artifacts_pb2.GetPreviewFileRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        data, content_type = await self._previews.file(request.preview_token, request.path)
        # Through the gateway these are the HTTP response's headers.
        await context.send_initial_metadata(HEADERS)
        return httpbody_pb2.HttpBody(content_type=content_type, data=data)
