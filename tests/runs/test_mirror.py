"""The transcript messages a batch of run events adds (server/agents/runs/mirror.py): a pure
function of the transcript before the batch and the batch."""

from __future__ import annotations

import uuid

from server.agents.runs.events import (
    ApprovalGiven,
    Completed,
    Delta,
    RunEvent,
    RunStatus,
    StatusChanged,
    ToolAnswered,
    ToolCalled,
    TurnUsage,
    UserSteered,
)
from server.agents.runs.mirror import TranscriptMessage, TranscriptMirror
from server.agents.runs.transcript import Transcript, rebuild

AUTHOR = uuid.UUID("018f0000-0000-7000-8000-000000000001")
STEERER = uuid.UUID("018f0000-0000-7000-8000-000000000002")
MIRROR = TranscriptMirror(AUTHOR, "echo")


def after(events: list[RunEvent]) -> Transcript:
    return rebuild("the goal", enumerate(events, start=1))


def test_the_first_batch_brings_the_goal() -> None:
    batch: list[RunEvent] = [StatusChanged(RunStatus.RUNNING, "step 1 of 5", step=1)]
    assert MIRROR.messages(Transcript("the goal"), batch) == [
        TranscriptMessage("user", "the goal", author_id=AUTHOR)
    ]
    assert MIRROR.messages(after(batch), [Delta("hi")]) == []


def test_a_turn_is_one_assistant_message_with_the_text_flushed_before_it() -> None:
    earlier: list[RunEvent] = [StatusChanged(RunStatus.RUNNING, step=1), Delta("Let me ")]
    call = ToolCalled("c1", "bash", '{"command": "ls"}', signature="sig")
    batch: list[RunEvent] = [Delta("look."), call, TurnUsage(12, 7)]
    assert MIRROR.messages(after(earlier), batch) == [
        TranscriptMessage(
            "assistant",
            "Let me look.",
            tool_calls=({"id": "c1", "name": "bash", "arguments": '{"command": "ls"}'},),
            model="echo",
            input_tokens=12,
            output_tokens=7,
            finish_reason="tool_use",
        )
    ]


def test_a_turn_cut_by_a_crash_counts_once_with_its_retry() -> None:
    cut: list[RunEvent] = [
        StatusChanged(RunStatus.RUNNING, step=1),
        Delta("first try"),
    ]
    batch: list[RunEvent] = [
        StatusChanged(RunStatus.RUNNING, "model turn restarted", step=1),
        Delta("second try"),
        TurnUsage(3, 4),
    ]
    (message,) = MIRROR.messages(after(cut), batch)
    assert message.content == "second try"
    assert message.finish_reason == "stop"
    assert message.tool_calls == ()


def test_results_and_steering_messages_in_order() -> None:
    turn: list[RunEvent] = [
        StatusChanged(RunStatus.RUNNING, step=1),
        ToolCalled("c1", "bash", "{}"),
        TurnUsage(1, 1),
    ]
    batch: list[RunEvent] = [
        ApprovalGiven("c1", True, "", str(STEERER)),
        ToolAnswered("c1", "bash", "out\x00put", is_error=False),
        UserSteered("faster", str(STEERER)),
        Completed(RunStatus.CANCELLED, "", 1, 1),
    ]
    messages = MIRROR.messages(after(turn), batch)
    assert messages == [
        TranscriptMessage("tool", "out\x00put", tool_call_id="c1"),
        TranscriptMessage("user", "faster", author_id=STEERER),
    ]
    # PostgreSQL holds no NUL character.
    assert messages[0].columns()["content"] == "output"
    assert messages[0].columns()["role"] == "tool"
