"""The echo model's run script (server/llm/echo_script.py): each turn is decided by the
tool results in the request, so these build requests by hand and check the next turn."""

from __future__ import annotations

import json
from collections.abc import Sequence

from server.config import Settings
from server.llm import (
    ChatMessage,
    ChatRequest,
    Finish,
    TextDelta,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    ToolSpec,
)
from server.llm.echo import EchoProvider
from server.llm.echo_answer import compose
from server.llm.echo_script import script_turn

ALL_TOOLS = ("bash", "editor", "save_artifact", "update_task", "finish")
GOAL = "Please run this:\n\n```python\nprint(6 * 7)\n```\n"


def request(
    goal: str = GOAL,
    history: Sequence[ChatMessage] = (),
    tools: Sequence[str] = ALL_TOOLS,
) -> ChatRequest:
    return ChatRequest(
        model="echo",
        messages=[ChatMessage.user(goal), *history],
        tools=[ToolSpec(name, f"the {name} tool") for name in tools],
    )


def play(
    goal: str = GOAL,
    tools: Sequence[str] = ALL_TOOLS,
    results: dict[str, tuple[str, bool]] | None = None,
) -> list[ToolCall]:
    """Runs the script to its end, answering each call from `results` (by tool name;
    default: success with a plain text)."""
    results = results or {}
    history: list[ChatMessage] = []
    calls: list[ToolCall] = []
    for _ in range(10):
        answer = compose(request(goal, history, tools))
        call = answer.tool_call
        if call is None:
            break
        assert answer.text  # a short sentence before each call
        calls.append(call)
        if call.name == "finish":
            break
        content, is_error = results.get(call.name, (f"{call.name} ok", False))
        history += [
            ChatMessage.assistant(answer.text, [call]),
            ChatMessage.tool([ToolResult(call.id, call.name, content, is_error)]),
        ]
    return calls


def args(call: ToolCall) -> dict[str, object]:
    parsed = json.loads(call.arguments_json)
    assert isinstance(parsed, dict)
    return parsed


def test_a_python_goal_is_created_run_saved_and_finished() -> None:
    calls = play(results={"bash": ("exit code 0 (0.02s)\n42\n", False)})
    assert [call.name for call in calls] == ["editor", "bash", "save_artifact", "finish"]
    assert args(calls[0]) == {"command": "create", "path": "main.py", "file_text": "print(6 * 7)\n"}
    assert args(calls[1]) == {"command": "python3 main.py"}
    assert args(calls[2]) == {"path": "main.py"}
    answer = str(args(calls[3])["answer"])
    assert "```\n42\n```" in answer
    assert "main.py" in answer
    # Deterministic ids, unique within the run.
    assert [call.id for call in calls] == [
        "echo-script-1-editor",
        "echo-script-2-bash",
        "echo-script-3-save_artifact",
        "echo-script-4-finish",
    ]


def test_the_file_hint_names_the_file() -> None:
    goal = "```js\n// file: src/app.js\nconsole.log(1)\n```"
    calls = play(goal)
    assert args(calls[0])["path"] == "src/app.js"
    assert args(calls[1]) == {"command": "node src/app.js"}
    hinted = play("```\n# file: tools/run.sh\necho hi\n```")
    assert args(hinted[0])["path"] == "tools/run.sh"
    assert args(hinted[1]) == {"command": "bash tools/run.sh"}


def test_the_fence_language_picks_the_file_and_the_runner() -> None:
    for language, path, command in (
        ("python", "main.py", "python3 main.py"),
        ("javascript", "main.js", "node main.js"),
        ("bash", "main.sh", "bash main.sh"),
    ):
        calls = play(f"```{language}\nx\n```")
        assert args(calls[0])["path"] == path
        assert args(calls[1]) == {"command": command}
    typescript = play("```ts\nconst x: number = 1\n```")
    assert args(typescript[0])["path"] == "main.ts"
    assert [call.name for call in typescript] == ["editor", "save_artifact", "finish"]


def test_steps_without_an_offered_tool_are_skipped() -> None:
    calls = play(tools=("editor", "save_artifact", "finish"))
    assert [call.name for call in calls] == ["editor", "save_artifact", "finish"]
    assert "printed" not in str(args(calls[-1])["answer"])
    # Without finish, the last turn is a plain answer.
    no_finish = request(tools=("editor",))
    first = compose(no_finish).tool_call
    assert first is not None
    done = compose(
        request(
            history=[
                ChatMessage.assistant("", [first]),
                ChatMessage.tool([ToolResult(first.id, "editor", "Wrote it")]),
            ],
            tools=("editor",),
        )
    )
    assert done.tool_call is None
    assert "main.py" in done.text


def test_an_error_result_finishes_with_a_report() -> None:
    calls = play(results={"bash": ("exit code 1 (0.01s)\nTraceback: boom", True)})
    assert [call.name for call in calls] == ["editor", "bash", "finish"]
    answer = str(args(calls[-1])["answer"])
    assert "bash step failed" in answer
    assert "boom" in answer


def test_the_next_step_follows_the_results_so_far() -> None:
    first = compose(request()).tool_call
    assert first is not None
    assert first.name == "editor"
    # The same request again (a retried turn) gives the same call.
    assert compose(request()).tool_call == first
    second = script_turn(
        request(
            history=[
                ChatMessage.assistant("", [first]),
                ChatMessage.tool([ToolResult(first.id, "editor", "Wrote it")]),
                ChatMessage.user("steering: keep going"),
            ]
        )
    )
    assert second is not None
    assert second.tool_call is not None
    assert second.tool_call.name == "bash"


def test_requests_the_script_does_not_follow() -> None:
    # No tools (a chat), no fenced block, or a /tool directive: the usual echo answers.
    assert script_turn(request(tools=())) is None
    assert script_turn(request("write a function that adds numbers")) is None
    directive = 'do it\n/tool bash {"command": "ls"}\n```python\nprint(1)\n```'
    assert script_turn(request(directive)) is None
    call = compose(request(directive)).tool_call
    assert call is not None
    assert call.name == "bash"
    assert json.loads(call.arguments_json) == {"command": "ls"}


async def test_the_echo_model_streams_the_sentence_then_the_call() -> None:
    provider = EchoProvider(Settings(echo_token_delay_ms=0))
    events = [event async for event in provider.stream(request())]
    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    assert text == "I will write the code to `main.py`."
    calls = [event for event in events if isinstance(event, ToolCallRequest)]
    assert [(call.id, call.name) for call in calls] == [("echo-script-1-editor", "editor")]
    last = events[-1]
    assert isinstance(last, Finish)
    assert last.reason == "tool_use"
