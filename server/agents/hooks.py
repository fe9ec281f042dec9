"""What other services may do when a chat answer completes (e.g. Artifacts extracts the code
blocks). AgentService does not import them; they register a listener at start-up."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class CompletedAnswer:
    project_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    user_id: uuid.UUID
    text: str


class AnswerListener(Protocol):
    async def answer_completed(self, answer: CompletedAnswer) -> Sequence[Any]:
        """Runs after the assistant message is persisted as complete, before the `completed`
        event. Returns `forge.artifacts.v1.Artifact` messages to stream as `artifact` events
        (produced by the listener's own service layer)."""
        ...
