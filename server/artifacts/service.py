"""ArtifactService servicer (protos in, domain calls, protos out; page tokens are handled
here), and the AnswerListener Chat calls, which streams a chat answer's artifacts."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

import grpc
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from google.api import httpbody_pb2
from google.protobuf import empty_pb2

from server.artifacts import convert, kinds
from server.artifacts.build_rpcs import BuildRpcs
from server.artifacts.builds import Builds
from server.artifacts.content import ArtifactContent, UploadSpec
from server.artifacts.files import ArtifactFiles
from server.artifacts.generation import ImageArtifacts, ImageSpec
from server.artifacts.listener import ChatArtifactListener
from server.artifacts.manager import (
    MUTABLE_FIELDS,
    ArtifactManager,
    ArtifactQuery,
    ListFilters,
    SandboxDirectory,
    Sources,
    artifact_query,
    checked_artifact_id,
)
from server.artifacts.previews import Previews
from server.artifacts.validation import Fields
from server.core.context import current_call
from server.core.errors import FieldViolation, InvalidArgument
from server.core.fieldmask import update_paths
from server.core.hooks import CompletedAnswer
from server.core.pagination import PageTokens
from server.core.timestamps import to_timedelta, to_timestamp

Context = grpc.aio.ServicerContext[Any, Any]


def _first_must_be_metadata() -> InvalidArgument:
    return InvalidArgument.of(
        [FieldViolation("metadata", "the first message must carry the metadata, and only it")]
    )


async def _chunks(
    requests: AsyncIterator[artifacts_pb2.UploadArtifactRequest],
) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("payload") == "metadata":
            raise _first_must_be_metadata()
        if request.chunk:
            yield request.chunk


def _list_filters(query: ArtifactQuery) -> dict[str, str]:
    """What a ListArtifacts page token is bound to: the checked project and filters."""
    filters = query.filters
    return {
        "project": str(query.project_id),
        "conversation": str(filters.conversation_id or ""),
        "language": filters.language,
        "kind": filters.kind.value if filters.kind else "",
        "run": str(filters.run_id or ""),
    }


class ArtifactService(BuildRpcs, artifacts_pb2_grpc.ArtifactServiceServicer):
    def __init__(
        self,
        manager: ArtifactManager,
        content: ArtifactContent,
        images: ImageArtifacts,
        page_tokens: PageTokens,
        files: ArtifactFiles,
        builds: Builds,
        previews: Previews,
    ) -> None:
        self._manager = manager
        self._content = content
        self._files = files
        self._images = images
        self._pages = page_tokens
        self._builds = builds
        self._previews = previews

    async def CreateArtifact(
        self, request: artifacts_pb2.CreateArtifactRequest, context: Context
    ) -> artifacts_pb2.Artifact:
        artifact = request.artifact
        created = await self._manager.create(
            current_call().require_caller(),
            request.project_id,
            convert.fields_from_proto(artifact, "artifact"),
            Sources(artifact.conversation_id, artifact.message_id, artifact.run_id),
            request.content,
            convert.files_from_proto(request.files),
            SandboxDirectory(request.source_directory.sandbox_id, request.source_directory.path)
            if request.HasField("source_directory")
            else None,
        )
        return convert.artifact_to_proto(created)

    async def GetArtifact(
        self, request: artifacts_pb2.GetArtifactRequest, context: Context
    ) -> artifacts_pb2.Artifact:
        artifact = await self._manager.get(current_call().require_caller(), request.artifact_id)
        return convert.artifact_to_proto(artifact)

    async def ListArtifacts(
        self, request: artifacts_pb2.ListArtifactsRequest, context: Context
    ) -> artifacts_pb2.ListArtifactsResponse:
        filters = ListFilters(
            conversation_id=request.conversation_id,
            language=request.language,
            kind=convert.kind_from_proto(request.kind, "kind"),
            run_id=request.run_id,
        )
        caller = current_call().require_caller()
        query = artifact_query(request.project_id, filters)
        page = self._pages.page(
            "artifacts", request.page_size, request.page_token, _list_filters(query)
        )
        result = await self._manager.list_artifacts(caller, query, page)
        return artifacts_pb2.ListArtifactsResponse(
            artifacts=[convert.artifact_to_proto(artifact) for artifact in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def UpdateArtifact(
        self, request: artifacts_pb2.UpdateArtifactRequest, context: Context
    ) -> artifacts_pb2.Artifact:
        # With an empty mask, only the metadata fields sent change (often none: an update
        # usually carries only new content).
        paths = update_paths(request.update_mask.paths, MUTABLE_FIELDS, request.artifact)
        content = request.content if request.HasField("content") else None
        fields = convert.fields_from_proto(request.artifact, "artifact")
        updated = await self._manager.update(
            current_call().require_caller(),
            request.artifact.id,
            paths,
            fields,
            content,
            request.base_version,
            convert.files_from_proto(request.files),
        )
        return convert.artifact_to_proto(updated)

    async def DeleteArtifact(
        self, request: artifacts_pb2.DeleteArtifactRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._manager.delete(current_call().require_caller(), request.artifact_id)
        return empty_pb2.Empty()

    async def ListArtifactVersions(
        self, request: artifacts_pb2.ListArtifactVersionsRequest, context: Context
    ) -> artifacts_pb2.ListArtifactVersionsResponse:
        caller = current_call().require_caller()
        aid = checked_artifact_id(request.artifact_id)
        page = self._pages.page(
            "artifact_versions", request.page_size, request.page_token, {"artifact": str(aid)}
        )
        result = await self._manager.list_versions(caller, aid, page)
        return artifacts_pb2.ListArtifactVersionsResponse(
            versions=[convert.version_to_proto(version) for version in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def GetArtifactContent(
        self, request: artifacts_pb2.GetArtifactContentRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        version, data = await self._content.read(
            current_call().require_caller(), request.artifact_id, request.version, request.path
        )
        # Through the gateway these are the HTTP response's headers.
        await context.send_initial_metadata(
            (
                ("content-disposition", kinds.content_disposition(version.content_type)),
                ("content-security-policy", kinds.CONTENT_SECURITY_POLICY),
            )
        )
        return httpbody_pb2.HttpBody(content_type=version.content_type, data=data)

    async def DownloadArtifact(
        self, request: artifacts_pb2.DownloadArtifactRequest, context: Context
    ) -> AsyncIterator[artifacts_pb2.DownloadArtifactResponse]:
        download = await self._content.open(
            current_call().require_caller(),
            request.artifact_id,
            request.version,
            request.offset,
            request.path,
        )
        async with download.stream as chunks:
            yield artifacts_pb2.DownloadArtifactResponse(
                metadata=convert.version_to_proto(download.version)
            )
            async for chunk in chunks:
                yield artifacts_pb2.DownloadArtifactResponse(chunk=chunk)

    async def ListArtifactFiles(
        self, request: artifacts_pb2.ListArtifactFilesRequest, context: Context
    ) -> artifacts_pb2.ListArtifactFilesResponse:
        caller = current_call().require_caller()
        aid = checked_artifact_id(request.artifact_id)
        page = self._pages.page(
            "artifact_files",
            request.page_size,
            request.page_token,
            {"artifact": str(aid), "version": request.version},
        )
        result = await self._files.list_files(caller, aid, request.version, page)
        return artifacts_pb2.ListArtifactFilesResponse(
            files=[convert.file_to_proto(file) for file in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def DownloadArtifactArchive(
        self, request: artifacts_pb2.DownloadArtifactArchiveRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        archive = await self._files.archive(
            current_call().require_caller(),
            request.artifact_id,
            request.version,
            convert.archive_format_from_proto(request.format),
        )
        # Through the gateway: the HTTP response's headers, and the first message's content
        # type is its Content-Type; every message's data is the next part of the body.
        await context.send_initial_metadata(
            (("content-disposition", f'attachment; filename="{archive.filename}"'),)
        )
        content_type = archive.content_type
        async for chunk in archive.chunks:
            yield httpbody_pb2.HttpBody(content_type=content_type, data=chunk)
            content_type = ""

    async def UploadArtifact(
        self,
        request_iterator: AsyncIterable[artifacts_pb2.UploadArtifactRequest],
        context: Context,
    ) -> artifacts_pb2.Artifact:
        caller = current_call().require_caller()
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise _first_must_be_metadata()
        metadata = first.metadata
        spec = UploadSpec(
            project_id=metadata.project_id,
            fields=convert.fields_from_proto(metadata.artifact, "metadata.artifact")
            if metadata.HasField("artifact")
            else Fields(),
            artifact_id=metadata.artifact_id,
            base_version=metadata.base_version,
            size_bytes=metadata.size_bytes,
            sha256=metadata.sha256,
        )
        uploaded = await self._content.upload(caller, spec, _chunks(requests))
        return convert.artifact_to_proto(uploaded)

    async def GetDownloadUrl(
        self, request: artifacts_pb2.GetDownloadUrlRequest, context: Context
    ) -> artifacts_pb2.GetDownloadUrlResponse:
        ttl = to_timedelta(request.ttl) if request.HasField("ttl") else None
        url, expire_time = await self._content.download_url(
            current_call().require_caller(), request.artifact_id, request.version, ttl
        )
        return artifacts_pb2.GetDownloadUrlResponse(url=url, expire_time=to_timestamp(expire_time))

    async def GenerateImage(
        self, request: artifacts_pb2.GenerateImageRequest, context: Context
    ) -> artifacts_pb2.Artifact:
        spec = ImageSpec(
            project_id=request.project_id,
            prompt=request.prompt,
            size=request.size,
            style=request.style,
            model=request.model,
            title=request.title,
            conversation_id=request.conversation_id,
        )
        image = await self._images.generate(current_call().require_caller(), spec)
        return convert.artifact_to_proto(image)


class ArtifactAnswerListener:
    """The AnswerListener offered to Chat: a completed answer's artifacts, as the protos
    Chat streams in `artifact` events."""

    def __init__(self, listener: ChatArtifactListener) -> None:
        self._listener = listener

    async def answer_completed(self, answer: CompletedAnswer) -> Sequence[artifacts_pb2.Artifact]:
        artifacts = await self._listener.answer_completed(answer)
        return [convert.artifact_to_proto(artifact) for artifact in artifacts]
