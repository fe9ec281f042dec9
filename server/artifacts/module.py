"""Builds ArtifactService: versioned artifacts, their blobs, transfers and images.

Offers a project-deletion hook, the chat answer listener (code blocks become artifacts),
its system counters and the artifact port agent runs save through; consumes the usage
ledger (GenerateImage is charged to the caller) and the sandbox port (a tree artifact made
of a sandbox directory). Its health follows the blob store (and,
like every service's, the database)."""

from __future__ import annotations

from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc

from server.artifacts import store
from server.artifacts.builds import Builds
from server.artifacts.byte_shares import ByteShares
from server.artifacts.chat import ChatExtraction
from server.artifacts.cleanup import ProjectArtifactsCleanup
from server.artifacts.content import ArtifactContent
from server.artifacts.core import ArtifactsCore, Limits
from server.artifacts.files import ArtifactFiles
from server.artifacts.generation import ImageArtifacts
from server.artifacts.lifecycle import ArtifactsLifecycle
from server.artifacts.listener import ChatArtifactListener
from server.artifacts.manager import ArtifactManager
from server.artifacts.port import ArtifactsForRuns
from server.artifacts.previews import Previews, PreviewTokens
from server.artifacts.service import ArtifactAnswerListener, ArtifactService
from server.artifacts.storage import make_blob_store
from server.artifacts.storage.health import BlobStoreHealth
from server.builds.limits import BuildLimits
from server.core.binding import ServiceBinding
from server.core.hooks import Offers
from server.core.limits import UserShares
from server.core.module import BuildContext, ServiceModule
from server.llm import ImageGenerator


def build(ctx: BuildContext) -> ServiceModule:
    settings = ctx.settings
    blobs = make_blob_store(settings)
    blob_health = BlobStoreHealth(blobs, settings.blob_store_probe_seconds)
    core = ArtifactsCore(
        ctx.sessions,
        blobs,
        Limits.from_settings(settings),
        ByteShares(UserShares(ctx.hooks.limits, settings)),
        ctx.hooks.agent_records,
        ctx.hooks.sandbox,
    )
    manager = ArtifactManager(core)
    generator = ImageGenerator(settings)
    servicer = ArtifactService(
        manager,
        ArtifactContent(core),
        ImageArtifacts(core, manager, generator, ctx.hooks.usage, ctx.hooks.own_keys),
        ctx.page_tokens,
        ArtifactFiles(core),
        Builds(core, BuildLimits.from_settings(settings)),
        Previews(core, PreviewTokens(ctx.secret), settings.public_url),
    )
    return ServiceModule(
        name="artifacts",
        bindings=[
            ServiceBinding.of(
                artifacts_pb2,
                artifacts_pb2_grpc,
                "ArtifactService",
                servicer,
                # A preview's signed link is its credential (previews.py).
                public_methods=["GetPreviewFile"],
            )
        ],
        # Opens the blob store (S3 client) and closes the image client; health probes the
        # store while it is open.
        background=[ArtifactsLifecycle(blobs, generator), blob_health],
        offers=Offers(
            project_deletion=[ProjectArtifactsCleanup(core.keeper)],
            answer_listeners=[ArtifactAnswerListener(ChatArtifactListener(ChatExtraction(core)))],
            system_counters=store.system_counters(),
            artifacts=ArtifactsForRuns(core),
        ),
        health=blob_health.follow,
    )
