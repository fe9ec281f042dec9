"""A run's state, rebuilt from its stored events alone (the loop is restartable).

The log of a run reads, per model turn:

    StatusChanged(RUNNING, step=n) · Delta* · ToolCalled* · TurnUsage
    then for each call, in order: [StatusChanged(WAITING) · ApprovalGiven]
    ExecReported*/ArtifactSaved* · ToolAnswered
    and UserSteered* before the next turn.

A TranscriptSummarized, written before a turn when the transcript outgrew the history
budget (runs/compaction.py), stands from then on for the events up to its `through_seq`: the
model is sent the goal, the summary (in the system prompt) and the turns after it.

A turn is complete at its TurnUsage, stored in one batch with the turn's tool calls, so a
complete turn without calls is one that asked for none (the final answer). A turn started
without a TurnUsage was cut mid-stream (its deltas stay in the log for clients; the model
is asked again). Calls are run one at a time, so of a turn's unanswered calls only the
first may have been in flight (or waiting for approval); the others never started.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from server.agents.runs.events import (
    ApprovalGiven,
    Completed,
    Delta,
    Failed,
    RunEvent,
    RunStatus,
    StatusChanged,
    ToolAnswered,
    ToolCalled,
    TranscriptSummarized,
    TurnUsage,
    UserSteered,
)
from server.llm import ChatMessage, Role, ToolCall, ToolResult
from server.llm.history import estimate_message_tokens

FINISH_TOOL = "finish"


@dataclass
class _Turn:
    text: str = ""
    calls: list[ToolCalled] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    complete: bool = False
    start_seq: int = 0


@dataclass
class Transcript:
    goal: str
    turns: list[_Turn] = field(default_factory=list)
    steering: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    """Steering messages (seq, text) by the number of complete turns before them."""
    input_tokens: int = 0
    output_tokens: int = 0
    steered: int = 0
    """UserSteered events recorded (inbox entries already taken)."""
    waiting_for: str = ""
    """The tool call a WAITING_FOR_APPROVAL status is about, until its ApprovalGiven."""
    approvals: dict[str, ApprovalGiven] = field(default_factory=dict)
    finish_answer: str | None = None
    """The `finish` tool's answer, once it was answered."""
    ended: bool = False
    last_seq: int = 0
    summary: str = ""
    """The newest TranscriptSummarized's text."""
    summary_through: int = 0
    """The last seq it covers."""

    # --- reading the log -----------------------------------------------------------------

    def apply(self, event: RunEvent, seq: int = 0) -> None:
        """Applies the event stored as `seq` (0: unknown, the one after `last_seq`)."""
        seq = seq or self.last_seq + 1
        turn = self.turns[-1] if self.turns else None
        match event:
            case StatusChanged(status=RunStatus.RUNNING, step=step) if step > 0:
                if turn is not None and not turn.complete:
                    self.turns.pop()  # cut mid-stream: asked again
                self.turns.append(_Turn(start_seq=seq))
                # Call ids are unique within a turn only (some providers number them).
                self.approvals.clear()
                self.waiting_for = ""
            case StatusChanged(status=RunStatus.WAITING_FOR_APPROVAL, tool_call_id=call_id):
                self.waiting_for = call_id
            case Delta(text=text) if turn is not None and not turn.complete:
                turn.text += text
            case TurnUsage(input_tokens=used_in, output_tokens=used_out):
                self.input_tokens += used_in
                self.output_tokens += used_out
                if turn is not None:
                    turn.complete = True
            case ToolCalled() if turn is not None:
                turn.calls.append(event)
            case ToolAnswered() if turn is not None:
                turn.results.append(
                    ToolResult(event.tool_call_id, event.name, event.content, event.is_error)
                )
                if event.name == FINISH_TOOL and not event.is_error:
                    self.finish_answer = _finish_answer(turn.calls, event.tool_call_id)
            case ApprovalGiven():
                self.approvals[event.tool_call_id] = event
                if self.waiting_for == event.tool_call_id:
                    self.waiting_for = ""
            case UserSteered(content=content):
                self.steered += 1
                self.steering.setdefault(self.steps, []).append((seq, content))
            case TranscriptSummarized():
                self.summary, self.summary_through = event.text, event.through_seq
                self.input_tokens += event.input_tokens
                self.output_tokens += event.output_tokens
            case Completed() | Failed():
                self.ended = True
            case _:
                pass

    # --- what the loop asks ----------------------------------------------------------------

    @property
    def steps(self) -> int:
        """Complete model turns."""
        return sum(1 for turn in self.turns if turn.complete)

    @property
    def turn_cut(self) -> bool:
        """The newest model turn started and never completed."""
        return bool(self.turns) and not self.turns[-1].complete

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def open_turn(self) -> tuple[bool, str, list[ToolCalled]]:
        """Whether the newest model turn is still streaming, with its text and calls so
        far (False, "", [] when there is none)."""
        if not self.turn_cut:
            return False, "", []
        turn = self.turns[-1]
        return True, turn.text, list(turn.calls)

    def unanswered(self) -> list[ToolCalled]:
        """Tool calls of the newest complete turn without a result, oldest first."""
        turn = self._last_complete()
        if turn is None:
            return []
        answered = {result.tool_call_id for result in turn.results}
        return [call for call in turn.calls if call.id not in answered]

    def final_text(self) -> str | None:
        """The run's answer when its newest complete turn asked for no tool (or `finish` was
        answered); None while the run has more to do."""
        if self.finish_answer is not None:
            return self.finish_answer
        turn = self._last_complete()
        if turn is None or turn is not self.turns[-1] or turn.calls:
            return None
        return turn.text

    def messages(self, through: int | None = None) -> list[ChatMessage]:
        """The history to send the model: the goal, then each complete turn with its tool
        calls and results, and the steering messages where they were given; of these, only
        what came after seq `through` (default: the newest summary's)."""
        return [ChatMessage.user(self.goal), *self._since(through)]

    def _since(self, through: int | None = None) -> list[ChatMessage]:
        """The history after the goal, from seq `through` + 1 on."""
        after = self.summary_through if through is None else through
        messages = [ChatMessage.user(text) for seq, text in self.steering.get(0, ()) if seq > after]
        done = 0
        for turn in self.turns:
            if not turn.complete:
                continue
            done += 1
            if turn.start_seq > after:
                calls = [ToolCall(c.id, c.name, c.arguments, c.signature) for c in turn.calls]
                messages.append(ChatMessage.assistant(turn.text, calls))
                if turn.results:
                    messages.append(ChatMessage.tool(turn.results))
            steering = self.steering.get(done, ())
            messages.extend(ChatMessage.user(text) for seq, text in steering if seq > after)
        return _without_empty(messages)

    def compaction(self, keep_tokens: int) -> tuple[int, list[ChatMessage]] | None:
        """What a new summary would cover so that the history after it fits `keep_tokens`:
        the last seq it covers and the messages since the newest summary up to there.
        Whole turns only (a call is never separated from its result), and never the newest
        complete turn; None when there is nothing to cover."""
        starts = [
            turn.start_seq
            for turn in self.turns
            if turn.complete and turn.start_seq > self.summary_through
        ]
        if len(starts) < 2:
            return None
        through = starts[-1] - 1  # the newest complete turn is always kept
        for start in reversed(starts[1:-1]):
            if _tokens(self._since(start - 1)) > keep_tokens:
                break
            through = start - 1
        everything = self._since()
        covered = everything[: len(everything) - len(self._since(through))]
        return through, covered

    def _last_complete(self) -> _Turn | None:
        for turn in reversed(self.turns):
            if turn.complete:
                return turn
        return None


def rebuild(goal: str, events: Iterable[tuple[int, RunEvent]]) -> Transcript:
    transcript = Transcript(goal)
    for seq, event in events:
        transcript.apply(event, seq)
        transcript.last_seq = seq
    return transcript


def _finish_answer(calls: list[ToolCalled], call_id: str) -> str:
    for call in calls:
        if call.id == call_id:
            try:
                arguments = json.loads(call.arguments)
            except json.JSONDecodeError:
                return ""
            answer = arguments.get("answer", "") if isinstance(arguments, dict) else ""
            return answer if isinstance(answer, str) else json.dumps(answer)
    return ""


def _tokens(messages: list[ChatMessage]) -> int:
    return sum(estimate_message_tokens(message) for message in messages)


def _without_empty(messages: list[ChatMessage]) -> list[ChatMessage]:
    """An assistant turn with neither text nor calls says nothing (providers reject it)."""
    return [
        message
        for message in messages
        if message.role is not Role.ASSISTANT or message.text or message.tool_calls
    ]
