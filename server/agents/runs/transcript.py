"""A run's state, rebuilt from its stored events alone (the loop is restartable).

The log of a run reads, per model turn:

    StatusChanged(RUNNING, step=n) · Delta* · ToolCalled* · TurnUsage
    then for each call, in order: [StatusChanged(WAITING) · ApprovalGiven]
    ExecReported*/ArtifactSaved* · ToolAnswered
    and UserSteered* before the next turn.

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
    TurnUsage,
    UserSteered,
)
from server.llm import ChatMessage, Role, ToolCall, ToolResult

FINISH_TOOL = "finish"


@dataclass
class _Turn:
    text: str = ""
    calls: list[ToolCalled] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    complete: bool = False


@dataclass
class Transcript:
    goal: str
    turns: list[_Turn] = field(default_factory=list)
    steering: dict[int, list[str]] = field(default_factory=dict)
    """Steering messages by the number of complete turns before them."""
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

    # --- reading the log -----------------------------------------------------------------

    def apply(self, event: RunEvent) -> None:
        turn = self.turns[-1] if self.turns else None
        match event:
            case StatusChanged(status=RunStatus.RUNNING, step=step) if step > 0:
                if turn is not None and not turn.complete:
                    self.turns.pop()  # cut mid-stream: asked again
                self.turns.append(_Turn())
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
                self.steering.setdefault(self.steps, []).append(content)
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

    def messages(self) -> list[ChatMessage]:
        """The history to send the model: the goal, then each complete turn with its tool
        calls and results, and the steering messages where they were given."""
        messages = [ChatMessage.user(self.goal)]
        messages.extend(ChatMessage.user(text) for text in self.steering.get(0, ()))
        done = 0
        for turn in self.turns:
            if not turn.complete:
                continue
            done += 1
            calls = [ToolCall(c.id, c.name, c.arguments, c.signature) for c in turn.calls]
            messages.append(ChatMessage.assistant(turn.text, calls))
            if turn.results:
                messages.append(ChatMessage.tool(turn.results))
            messages.extend(ChatMessage.user(text) for text in self.steering.get(done, ()))
        return _without_empty(messages)

    def _last_complete(self) -> _Turn | None:
        for turn in reversed(self.turns):
            if turn.complete:
                return turn
        return None


def rebuild(goal: str, events: Iterable[tuple[int, RunEvent]]) -> Transcript:
    transcript = Transcript(goal)
    for seq, event in events:
        transcript.apply(event)
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


def _without_empty(messages: list[ChatMessage]) -> list[ChatMessage]:
    """An assistant turn with neither text nor calls says nothing (providers reject it)."""
    return [
        message
        for message in messages
        if message.role is not Role.ASSISTANT or message.text or message.tool_calls
    ]
