"""An answer's provider stream that CancelAnswer can stop (cancel_answer.py).

The chat reads its provider stream in a task of its own (server/llm/coalesce.py); when the
answer is cancelled, from any process, that reading stops: the deltas read and not yet sent
are dropped, the task is cancelled (which closes the provider stream where it waits), and
the chat's stream raises `Cancelled` (ANSWER_CANCELLED) before its next event. Nothing is
raced per delta: the watch costs one registration per answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from server.agents.cancel_answer import ANSWER
from server.core.cancels import Cancels
from server.core.errors import Cancelled
from server.llm.coalesce import Stop, Stops


def answer_cancelled() -> Cancelled:
    return Cancelled("the answer was cancelled", "ANSWER_CANCELLED")


def answer_stops(cancels: Cancels | None, message_id: uuid.UUID) -> Stops | None:
    """What stops the answer `message_id`'s provider stream: its CancelAnswer."""
    if cancels is None:
        return None

    def watch(stop: Stop) -> Callable[[], None]:
        return cancels.watch(ANSWER, message_id, lambda: stop(answer_cancelled()))

    return watch
