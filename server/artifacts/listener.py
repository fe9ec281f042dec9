"""The AnswerListener AgentService calls when a chat answer completes: the answer's code
blocks become artifacts (or new versions), returned as protos for `artifact` events."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from forge.artifacts.v1 import artifacts_pb2

from server.artifacts.chat import ChatExtraction
from server.artifacts.convert import artifact_to_proto
from server.core.hooks import CompletedAnswer

log = logging.getLogger(__name__)


class ChatArtifactListener:
    def __init__(self, extraction: ChatExtraction) -> None:
        self._extraction = extraction

    async def answer_completed(self, answer: CompletedAnswer) -> Sequence[artifacts_pb2.Artifact]:
        # The answer is saved already: a failure here costs its artifacts, not the answer.
        try:
            rows = await self._extraction.extract(answer)
        except Exception:
            log.exception(
                "could not extract artifacts from a chat answer",
                extra={"message_id": str(answer.message_id)},
            )
            return []
        return [artifact_to_proto(row) for row in rows]
