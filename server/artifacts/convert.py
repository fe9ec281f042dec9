"""Artifact domain values ↔ protos: the only module of the package that sees both."""

from __future__ import annotations

from collections.abc import Iterable

from forge.artifacts.v1 import artifacts_pb2

from server.artifacts.archive import ArchiveFormat
from server.artifacts.build_views import BuildCompleted, BuildStarted, BuildStreamEvent, BuildView
from server.artifacts.kinds import Kind, Origin
from server.artifacts.trees import NewFile
from server.artifacts.validation import Fields
from server.artifacts.views import ArtifactView, FileView, VersionView
from server.builds.events import BuildLog, BuildStatus, Diagnostic, Severity
from server.core.errors import FieldViolation, InvalidArgument
from server.core.timestamps import to_duration, to_timestamp

KIND_TO_PROTO = {
    Kind.CODE: artifacts_pb2.ARTIFACT_KIND_CODE,
    Kind.HTML: artifacts_pb2.ARTIFACT_KIND_HTML,
    Kind.REACT: artifacts_pb2.ARTIFACT_KIND_REACT,
    Kind.MARKDOWN: artifacts_pb2.ARTIFACT_KIND_MARKDOWN,
    Kind.IMAGE: artifacts_pb2.ARTIFACT_KIND_IMAGE,
    Kind.FILE: artifacts_pb2.ARTIFACT_KIND_FILE,
    Kind.TREE: artifacts_pb2.ARTIFACT_KIND_TREE,
}
KIND_FROM_PROTO: dict[int, Kind] = {value: kind for kind, value in KIND_TO_PROTO.items()}

ORIGIN_TO_PROTO = {
    Origin.CHAT: artifacts_pb2.ARTIFACT_ORIGIN_CHAT,
    Origin.RUN: artifacts_pb2.ARTIFACT_ORIGIN_RUN,
    Origin.API: artifacts_pb2.ARTIFACT_ORIGIN_API,
    Origin.UPLOAD: artifacts_pb2.ARTIFACT_ORIGIN_UPLOAD,
    Origin.IMAGE_GENERATION: artifacts_pb2.ARTIFACT_ORIGIN_IMAGE_GENERATION,
}


ARCHIVE_FORMAT_FROM_PROTO: dict[int, ArchiveFormat] = {
    artifacts_pb2.ARCHIVE_FORMAT_UNSPECIFIED: ArchiveFormat.ZIP,
    artifacts_pb2.ARCHIVE_FORMAT_ZIP: ArchiveFormat.ZIP,
    artifacts_pb2.ARCHIVE_FORMAT_TAR_GZ: ArchiveFormat.TAR_GZ,
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


def files_from_proto(files: Iterable[artifacts_pb2.ArtifactFile]) -> list[NewFile]:
    return [NewFile(file.path, file.content, file.content_type) for file in files]


def file_to_proto(file: FileView) -> artifacts_pb2.ArtifactFile:
    return artifacts_pb2.ArtifactFile(
        path=file.path,
        size_bytes=file.size_bytes,
        sha256=file.sha256,
        content_type=file.content_type,
    )


def archive_format_from_proto(value: int) -> ArchiveFormat:
    archive_format = ARCHIVE_FORMAT_FROM_PROTO.get(value)
    if archive_format is None:
        raise InvalidArgument.of([FieldViolation("format", f"unknown archive format {value}")])
    return archive_format


# --- builds -------------------------------------------------------------------------------

BUILD_STATUS_TO_PROTO = {
    BuildStatus.SUCCEEDED: artifacts_pb2.BUILD_STATUS_SUCCEEDED,
    BuildStatus.FAILED: artifacts_pb2.BUILD_STATUS_FAILED,
}
SEVERITY_TO_PROTO = {
    Severity.ERROR: artifacts_pb2.DIAGNOSTIC_SEVERITY_ERROR,
    Severity.WARNING: artifacts_pb2.DIAGNOSTIC_SEVERITY_WARNING,
}


def diagnostic_to_proto(diagnostic: Diagnostic) -> artifacts_pb2.BuildDiagnostic:
    return artifacts_pb2.BuildDiagnostic(
        severity=SEVERITY_TO_PROTO[diagnostic.severity],
        message=diagnostic.message,
        file=diagnostic.file,
        line=diagnostic.line,
        column=diagnostic.column,
    )


def build_to_proto(build: BuildView) -> artifacts_pb2.Build:
    return artifacts_pb2.Build(
        id=str(build.id),
        artifact_id=str(build.artifact_id),
        artifact_version=build.version,
        status=BUILD_STATUS_TO_PROTO[build.status],
        entry_point=build.entry_point,
        outputs=[
            artifacts_pb2.BuildOutputFile(
                path=output.path,
                size_bytes=output.size_bytes,
                sha256=output.sha256,
                content_type=output.content_type,
            )
            for output in build.outputs
        ],
        diagnostics=[diagnostic_to_proto(d) for d in build.diagnostics],
        duration=to_duration(build.duration),
        creator_user_id=str(build.creator_id or ""),
        create_time=to_timestamp(build.create_time),
    )


def build_event_to_proto(event: BuildStreamEvent) -> artifacts_pb2.BuildEvent:
    if isinstance(event, BuildStarted):
        started = artifacts_pb2.BuildStarted(artifact_version=event.version, cached=event.cached)
        return artifacts_pb2.BuildEvent(started=started)
    if isinstance(event, BuildLog):
        log = artifacts_pb2.BuildLog(message=event.message, stderr=event.stderr)
        return artifacts_pb2.BuildEvent(log=log)
    if isinstance(event, Diagnostic):
        return artifacts_pb2.BuildEvent(diagnostic=diagnostic_to_proto(event))
    assert isinstance(event, BuildCompleted)
    return artifacts_pb2.BuildEvent(completed=build_to_proto(event.build))
