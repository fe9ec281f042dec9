"""Builds the Artifacts service from the settings: what `wire()` binds and registers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.artifacts.chat import ChatExtraction
from server.artifacts.cleanup import ProjectArtifactsCleanup
from server.artifacts.content import ArtifactContent
from server.artifacts.core import ArtifactsCore, Limits
from server.artifacts.generation import ImageArtifacts
from server.artifacts.images import ImageGenerator
from server.artifacts.lifecycle import ArtifactsLifecycle
from server.artifacts.listener import ChatArtifactListener
from server.artifacts.manager import ArtifactManager
from server.artifacts.service import ArtifactService
from server.artifacts.storage import make_blob_store
from server.config import Settings
from server.core.pagination import PageTokens


@dataclass(frozen=True)
class ArtifactParts:
    servicer: ArtifactService
    answer_listener: ChatArtifactListener
    """For `Dependencies.answer_listeners`: chat answers' code blocks become artifacts."""
    project_cleanup: ProjectArtifactsCleanup
    """For `Dependencies.project_hooks`: a deleted project's artifacts and blobs go too."""
    lifecycle: ArtifactsLifecycle
    """For `background`: opens the blob store (S3 client) and closes the image client."""


def build_artifacts(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], pages: PageTokens
) -> ArtifactParts:
    blobs = make_blob_store(settings)
    core = ArtifactsCore(sessions, blobs, pages, Limits.from_settings(settings))
    manager = ArtifactManager(core)
    generator = ImageGenerator(settings)
    return ArtifactParts(
        servicer=ArtifactService(
            manager, ArtifactContent(core), ImageArtifacts(core, manager, generator)
        ),
        answer_listener=ChatArtifactListener(ChatExtraction(core)),
        project_cleanup=ProjectArtifactsCleanup(core.keeper),
        lifecycle=ArtifactsLifecycle(blobs, generator),
    )
