"""The echo model's run script: when a request offers tools and its goal (the first user
message) holds a fenced code block, the echo model works like a tiny agent, one step per
model turn, each decided by the tool results so far:

1. `editor` create: the block, in the file its `# file: name` / `// file: name` hint names,
   else `main.<ext>` by the fence's language;
2. `bash`: runs it (`python3 main.py`, `node main.js`, `bash main.sh`);
3. `save_artifact` of the file;
4. `finish`, reporting what the program printed.

Steps whose tool the request does not offer are skipped (without `finish`, the last turn is
a plain answer). When a step's result is an error, the script finishes reporting it. Tool
call ids are `echo-script-<step>-<tool>`, the same on every retry of a turn.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from server.llm.base import ChatRequest, Role, ToolCall, ToolResult

ID_PREFIX = "echo-script-"
_FENCE = re.compile(r"^```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_FILE_HINT = re.compile(r"^\s*(?:#|//)\s*file:\s*(\S+)", re.MULTILINE)
_TOOL_DIRECTIVE = re.compile(r"^/tool\s", re.MULTILINE)
_LANGUAGE_EXTENSIONS = {
    "python": "py",
    "python3": "py",
    "py": "py",
    "javascript": "js",
    "js": "js",
    "node": "js",
    "typescript": "ts",
    "ts": "ts",
    "bash": "sh",
    "sh": "sh",
    "shell": "sh",
}
_RUNNERS = {"py": "python3", "js": "node", "sh": "bash"}
OUTPUT_CHARS = 2000
HINT_LINES = 3
"""The hint is looked for in the block's first lines only."""


@dataclass(frozen=True, slots=True)
class ScriptTurn:
    text: str
    tool_call: ToolCall | None = None


@dataclass(frozen=True, slots=True)
class _Step:
    tool: str
    arguments: dict[str, object]
    text: str


def script_turn(request: ChatRequest) -> ScriptTurn | None:
    """The script's next turn, or None when the request is not one it follows."""
    offered = {tool.name for tool in request.tools}
    goal = next((m.text for m in request.messages if m.role is Role.USER), "")
    if not offered or _TOOL_DIRECTIVE.search(goal):
        return None
    block = _FENCE.search(goal)
    if block is None:
        return None
    code = block.group(2)
    path = _path_of(block.group(1).lower(), code)
    steps = [step for step in _steps(path, code) if step.tool in offered]
    results = _script_results(request)
    for index, step in enumerate(steps, start=1):
        call_id = f"{ID_PREFIX}{index}-{step.tool}"
        result = results.get(call_id)
        if result is None:
            return _turn(step.text, call_id, step.tool, step.arguments)
        if result.is_error:
            answer = f"I could not finish: the {result.name} step failed: {_cut(result.content)}"
            return _finish(answer, offered, len(steps) + 1)
    return _finish(_report(path, steps, results), offered, len(steps) + 1)


def _path_of(language: str, code: str) -> str:
    hint = _FILE_HINT.search("\n".join(code.split("\n")[:HINT_LINES]))
    if hint is not None:
        return hint.group(1)
    # A fence without a language is taken for Python, the sandbox's language.
    return f"main.{_LANGUAGE_EXTENSIONS.get(language, 'py' if not language else 'txt')}"


def _steps(path: str, code: str) -> list[_Step]:
    steps = [
        _Step(
            "editor",
            {"command": "create", "path": path, "file_text": code},
            f"I will write the code to `{path}`.",
        )
    ]
    runner = _RUNNERS.get(path.rsplit(".", 1)[-1] if "." in path else "")
    if runner is not None:
        command = f"{runner} {shlex.quote(path)}"
        steps.append(_Step("bash", {"command": command}, f"Now I run it: `{command}`."))
    steps.append(_Step("save_artifact", {"path": path}, f"Saving `{path}` as an artifact."))
    return steps


def _script_results(request: ChatRequest) -> dict[str, ToolResult]:
    return {
        result.tool_call_id: result
        for message in request.messages
        if message.role is Role.TOOL
        for result in message.tool_results
        if result.tool_call_id.startswith(ID_PREFIX)
    }


def _report(path: str, steps: list[_Step], results: dict[str, ToolResult]) -> str:
    done = [f"wrote `{path}`"] if any(s.tool == "editor" for s in steps) else []
    output = ""
    for index, step in enumerate(steps, start=1):
        result = results[f"{ID_PREFIX}{index}-{step.tool}"]
        if step.tool == "bash":
            done.append(f"ran `{step.arguments['command']}`")
            output = result.content.partition("\n")[2].strip()
        elif step.tool == "save_artifact":
            done.append("saved it as an artifact")
    if not done:
        return "Done: there was nothing I could do with the tools I have."
    summary = "I " + ", ".join(done[:-1]) + (" and " if len(done) > 1 else "") + done[-1]
    if any(step.tool == "bash" for step in steps):
        return f"{summary}. The program printed:\n\n```\n{_cut(output)}\n```"
    return f"{summary}."


def _cut(text: str) -> str:
    return text if len(text) <= OUTPUT_CHARS else text[:OUTPUT_CHARS] + "…"


def _finish(answer: str, offered: set[str], index: int) -> ScriptTurn:
    if "finish" not in offered:
        return ScriptTurn(answer)
    return _turn("Finishing.", f"{ID_PREFIX}{index}-finish", "finish", {"answer": answer})


def _turn(text: str, call_id: str, tool: str, arguments: dict[str, object]) -> ScriptTurn:
    return ScriptTurn(text, ToolCall(call_id, tool, json.dumps(arguments, sort_keys=True)))
