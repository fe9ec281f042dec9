"""Artifacts from chat answers: each file the fenced code blocks of a completed answer show
(several blocks of one file consolidated into one, see consolidate.py) becomes an artifact
of its conversation, or, when an artifact of that conversation already has the file's name,
its next version (unless the content is unchanged)."""

from __future__ import annotations

import uuid

from server.artifacts import store
from server.artifacts.consolidate import consolidate
from server.artifacts.core import ArtifactsCore
from server.artifacts.extract import CodeBlock, extract_code_blocks
from server.artifacts.kinds import Kind, Origin
from server.artifacts.storage import BlobInfo
from server.artifacts.validation import MAX_LANGUAGE, MAX_TITLE
from server.artifacts.views import ArtifactView
from server.core.hooks import CompletedAnswer
from server.db.artifact_models import ArtifactRow


class ChatExtraction:
    def __init__(self, core: ArtifactsCore) -> None:
        self._core = core

    async def extract(self, answer: CompletedAnswer) -> list[ArtifactView]:
        """The artifacts the answer created or updated, in the order of their blocks."""
        limit = self._core.limits.max_upload_bytes
        blocks = [
            (block, block.content.encode())
            for block in consolidate(extract_code_blocks(answer.text))
            if len(block.content.encode()) <= limit
        ]
        if not blocks:
            return []
        blobs = self._core.blobs
        stored: list[tuple[CodeBlock, BlobInfo]] = []
        infos: list[BlobInfo] = []  # read on failure: what was stored so far
        by_sha: dict[str, tuple[bytes, str]] = {}
        async with self._core.keeper.releasing_on_failure(infos):
            for block, data in blocks:
                info = await blobs.put_bytes(data, block.content_type)
                infos.append(info)
                stored.append((block, info))
                by_sha[info.sha256] = (data, block.content_type)

            async def restore(sha256: str) -> None:
                await blobs.put_bytes(*by_sha[sha256])

            async with self._core.sessions() as db, db.begin():
                await store.lock_conversation(db, answer.conversation_id)
                named: dict[str, ArtifactRow | None] = {}
                for block, _ in stored:
                    if block.filename not in named:
                        named[block.filename] = await store.find_in_conversation(
                            db, answer.project_id, answer.conversation_id, block.filename
                        )
                await self._core.keeper.hold(db, by_sha, restore)
                touched: dict[uuid.UUID, ArtifactRow] = {}
                for block, info in stored:
                    row = named[block.filename]
                    if row is None:
                        row = await store.insert_artifact(db, _new(answer, block), info)
                        named[block.filename] = row
                    elif row.sha256 != info.sha256:
                        await store.append_version(
                            db,
                            row,
                            info,
                            block.content_type,
                            answer.user_id,
                            message_id=answer.message_id,
                        )
                    touched[row.id] = row
                await db.flush()
        return [ArtifactView.of(row) for row in touched.values()]


def _new(answer: CompletedAnswer, block: CodeBlock) -> store.NewArtifact:
    return store.NewArtifact(
        project_id=answer.project_id,
        title=block.title[:MAX_TITLE],
        filename=block.filename,
        language=block.language[:MAX_LANGUAGE],
        kind=Kind(block.kind),
        content_type=block.content_type,
        origin=Origin.CHAT,
        creator_id=answer.user_id,
        conversation_id=answer.conversation_id,
        message_id=answer.message_id,
    )
