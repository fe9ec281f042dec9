"""Artifact domain values ↔ protos: the only module of the package that sees both."""

from __future__ import annotations

from forge.artifacts.v1 import artifacts_pb2

from server.artifacts.kinds import Kind, Origin
from server.artifacts.validation import Fields
from server.artifacts.views import ArtifactView, VersionView
from server.core.errors import FieldViolation, InvalidArgument
from server.core.timestamps import to_timestamp

KIND_TO_PROTO = {
    Kind.CODE: artifacts_pb2.ARTIFACT_KIND_CODE,
    Kind.HTML: artifacts_pb2.ARTIFACT_KIND_HTML,
    Kind.REACT: artifacts_pb2.ARTIFACT_KIND_REACT,
    Kind.MARKDOWN: artifacts_pb2.ARTIFACT_KIND_MARKDOWN,
    Kind.IMAGE: artifacts_pb2.ARTIFACT_KIND_IMAGE,
    Kind.FILE: artifacts_pb2.ARTIFACT_KIND_FILE,
}
KIND_FROM_PROTO: dict[int, Kind] = {value: kind for kind, value in KIND_TO_PROTO.items()}

ORIGIN_TO_PROTO = {
    Origin.CHAT: artifacts_pb2.ARTIFACT_ORIGIN_CHAT,
    Origin.RUN: artifacts_pb2.ARTIFACT_ORIGIN_RUN,
    Origin.API: artifacts_pb2.ARTIFACT_ORIGIN_API,
    Origin.UPLOAD: artifacts_pb2.ARTIFACT_ORIGIN_UPLOAD,
    Origin.IMAGE_GENERATION: artifacts_pb2.ARTIFACT_ORIGIN_IMAGE_GENERATION,
}


def _text(value: object) -> str:
    return "" if value is None else str(value)


def kind_from_proto(value: int, field: str) -> Kind | None:
    """None for UNSPECIFIED; INVALID_ARGUMENT for a number this server does not know."""
    if value == artifacts_pb2.ARTIFACT_KIND_UNSPECIFIED:
        return None
    kind = KIND_FROM_PROTO.get(value)
    if kind is None:
        raise InvalidArgument.of([FieldViolation(field, f"unknown kind {value}")])
    return kind


def fields_from_proto(artifact: artifacts_pb2.Artifact, prefix: str) -> Fields:
    return Fields(
        title=artifact.title,
        filename=artifact.filename,
        language=artifact.language,
        kind=kind_from_proto(artifact.kind, f"{prefix}.kind"),
        content_type=artifact.content_type,
    )


def artifact_to_proto(artifact: ArtifactView) -> artifacts_pb2.Artifact:
    return artifacts_pb2.Artifact(
        id=str(artifact.id),
        project_id=str(artifact.project_id),
        title=artifact.title,
        filename=artifact.filename,
        language=artifact.language,
        kind=KIND_TO_PROTO[artifact.kind],
        content_type=artifact.content_type,
        origin=ORIGIN_TO_PROTO[artifact.origin],
        conversation_id=_text(artifact.conversation_id),
        message_id=_text(artifact.message_id),
        run_id=_text(artifact.run_id),
        latest_version=artifact.latest_version,
        size_bytes=artifact.size_bytes,
        sha256=artifact.sha256,
        creator_user_id=_text(artifact.creator_id),
        create_time=to_timestamp(artifact.create_time),
        update_time=to_timestamp(artifact.update_time),
    )


def version_to_proto(version: VersionView) -> artifacts_pb2.ArtifactVersion:
    return artifacts_pb2.ArtifactVersion(
        artifact_id=str(version.artifact_id),
        version=version.version,
        size_bytes=version.size_bytes,
        sha256=version.sha256,
        content_type=version.content_type,
        message_id=_text(version.message_id),
        run_id=_text(version.run_id),
        creator_user_id=_text(version.creator_id),
        create_time=to_timestamp(version.create_time),
    )
