"""Deployment domain values <-> protos: the only module of the package that sees both."""

from __future__ import annotations

from forge.deployments.v1 import deployments_pb2

from server.core.timestamps import to_timestamp
from server.deployments.deployments import DeploymentDraft
from server.deployments.target_config import FIELD_OF_KIND, TargetDraft
from server.deployments.views import DeploymentView, Status, TargetKind, TargetView

_KIND_OF_FIELD = {field: kind for kind, field in FIELD_OF_KIND.items()}
# The settings of each kind, as the proto names them (the same names in the stored config).
_SETTINGS = {
    TargetKind.S3_WEBSITE: ("bucket", "prefix", "region", "access_key_id"),
    TargetKind.NETLIFY: ("site_id",),
    TargetKind.VERCEL: ("project_name", "team_id"),
    TargetKind.GITHUB_PAGES: ("remote_url", "branch", "site_url"),
}
STATUS_TO_PROTO = {
    Status.QUEUED: deployments_pb2.DEPLOYMENT_STATUS_QUEUED,
    Status.UPLOADING: deployments_pb2.DEPLOYMENT_STATUS_UPLOADING,
    Status.LIVE: deployments_pb2.DEPLOYMENT_STATUS_LIVE,
    Status.FAILED: deployments_pb2.DEPLOYMENT_STATUS_FAILED,
    Status.SUPERSEDED: deployments_pb2.DEPLOYMENT_STATUS_SUPERSEDED,
}


def target_draft(target: deployments_pb2.DeployTarget) -> TargetDraft:
    which = target.WhichOneof("target")
    if which is None:
        return TargetDraft(None, {}, target.token, target.display_name)
    kind = _KIND_OF_FIELD[which]
    settings = getattr(target, which)
    config = {name: getattr(settings, name) for name in _SETTINGS[kind]}
    return TargetDraft(kind, config, target.token, target.display_name)


def target_to_proto(view: TargetView) -> deployments_pb2.DeployTarget:
    message = deployments_pb2.DeployTarget(
        id=str(view.id),
        project_id=str(view.project_id),
        display_name=view.display_name,
        token_hint=view.token_hint,
        creator_user_id=str(view.creator_id or ""),
        create_time=to_timestamp(view.create_time),
    )
    settings = getattr(message, FIELD_OF_KIND[view.kind])
    for name in _SETTINGS[view.kind]:
        setattr(settings, name, str(view.config.get(name, "")))
    settings.SetInParent()  # a kind whose settings are all empty still shows
    return message


def deployment_draft(deployment: deployments_pb2.Deployment) -> DeploymentDraft:
    return DeploymentDraft(
        target_id=deployment.deploy_target_id,
        build_id=deployment.build_id,
        artifact_id=deployment.artifact_id,
        artifact_version=deployment.artifact_version,
    )


def deployment_to_proto(view: DeploymentView) -> deployments_pb2.Deployment:
    message = deployments_pb2.Deployment(
        id=str(view.id),
        project_id=str(view.project_id),
        deploy_target_id=str(view.target_id),
        build_id=str(view.build_id or ""),
        artifact_id=str(view.artifact_id or ""),
        artifact_version=view.artifact_version,
        status=STATUS_TO_PROTO[view.status],
        url=view.url,
        file_count=view.file_count,
        uploaded_file_count=view.uploaded_file_count,
        creator_user_id=str(view.creator_id or ""),
        create_time=to_timestamp(view.create_time),
        update_time=to_timestamp(view.update_time),
        live_time=to_timestamp(view.live_time),
    )
    if view.error_reason:
        message.error.reason = view.error_reason
        message.error.message = view.error_message
    return message
