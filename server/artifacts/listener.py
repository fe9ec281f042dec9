"""What Artifacts does when a chat answer completes: the answer's code blocks become
artifacts (or new versions). Chat reaches it through the AnswerListener adapter in
service.py, which streams them as `artifact` events."""

from __future__ import annotations

import logging

from server.artifacts.chat import ChatExtraction
from server.artifacts.views import ArtifactView
from server.core.errors import Unavailable
from server.core.hooks import CompletedAnswer
from server.db.unavailable import is_database_unavailable

log = logging.getLogger(__name__)


class ChatArtifactListener:
    def __init__(self, extraction: ChatExtraction) -> None:
        self._extraction = extraction

    async def answer_completed(self, answer: CompletedAnswer) -> list[ArtifactView]:
        # The answer is saved already: a failure here costs its artifacts, not the answer.
        try:
            return await self._extraction.extract(answer)
        except Exception as error:
            # The blob store or the database out of reach is an outage, reported by health.
            if isinstance(error, Unavailable) or is_database_unavailable(error):
                log.warning(
                    "could not extract artifacts from a chat answer: a store is unavailable",
                    extra={"message_id": str(answer.message_id), "error": repr(error)},
                )
            else:
                log.exception(
                    "could not extract artifacts from a chat answer",
                    extra={"message_id": str(answer.message_id)},
                )
            return []
