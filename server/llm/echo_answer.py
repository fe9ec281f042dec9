"""What the offline echo model answers: a pure, deterministic function of the request.

- The newest user message is repeated inside a fixed frame, so every answer has at least 20
  words (enough to exercise streaming).
- When it asks for code ("code", "function", "script", "program", "class", "implement",
  "snippet"), the answer has a fenced code block whose first line is a `# file: <name>`
  hint (`// file:` for JavaScript/TypeScript); when it asks for two files ("two files",
  "2 scripts", "both modules", or names two files such as `app.py` and `util.py`), two
  blocks, the first importing the second. Files the prompt names are used (so asking to
  "rewrite main.py" rewrites that file); otherwise `main` and `utils` with the extension of
  the language asked for (python unless javascript/node, typescript or bash/shell).
- A line `/tool <name> {json}` in the prompt, naming a tool the request offers, makes the
  answer a call of that tool; when the newest message holds tool results, the answer
  reports them.
- In runs (the request offers tools) whose goal holds a fenced code block, the answer is
  the next step of a fixed tool script (echo_script.py): create the file, run it, save it
  as an artifact, finish.

An answer is kept as its paragraphs, the user's words being the very string of the request,
and cut into tokens as they are taken (`EchoAnswer.tokens`): a stream holds neither a second
copy of the prompt nor a regex scanner (~1.6 KB each) for as long as it streams.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from server.llm.base import ChatRequest, Role, ToolCall
from server.llm.echo_script import script_turn

_ASKS_FOR_CODE = re.compile(
    r"\b(code|function|script|program|class|implement\w*|snippet)s?\b", re.IGNORECASE
)
_ASKS_FOR_TWO_FILES = re.compile(
    r"\b(two|2|both)\s+(?:\w+\s+)?(files|scripts|modules|programs)\b", re.IGNORECASE
)
_FILENAME = re.compile(r"\b([A-Za-z_][\w-]*\.(?:py|js|ts|sh))\b")
_TOOL_DIRECTIVE = re.compile(r"^/tool\s+([A-Za-z_][\w.-]*)[ \t]*(.*)$", re.MULTILINE)

_LANGUAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(typescript|ts)\b", re.IGNORECASE), "typescript"),
    (re.compile(r"\b(javascript|node(?:\.?js)?|js)\b", re.IGNORECASE), "javascript"),
    (re.compile(r"\b(bash|shell|sh)\b", re.IGNORECASE), "bash"),
)
_EXTENSIONS = {"python": "py", "javascript": "js", "typescript": "ts", "bash": "sh"}
_BY_EXTENSION = {ext: language for language, ext in _EXTENSIONS.items()}

INTRO = "Echo here, the offline model of Forge. You said:"
OUTRO = (
    "That is all the echo model can do: it repeats your words so you can try Forge "
    "without a provider key. Configure one to talk to a real model."
)
SUMMARY_CHARS = 60
PARAGRAPH_BREAK = "\n\n"
_TOKEN = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class EchoAnswer:
    paragraphs: tuple[str, ...]
    """The answer's text is these, joined by PARAGRAPH_BREAK."""
    tool_call: ToolCall | None = None

    @property
    def text(self) -> str:
        return PARAGRAPH_BREAK.join(self.paragraphs)

    def tokens(self) -> Iterator[str]:
        """The text's words, each with the whitespace before it (they concatenate to the
        text, trailing whitespace left out), cut from the paragraphs as they are taken."""
        match = _TOKEN.match
        before = ""  # whitespace the next token starts with, carried across paragraphs
        for paragraph in self.paragraphs:
            at = 0
            while (token := match(paragraph, at)) is not None:
                at = token.end()
                yield before + token.group() if before else token.group()
                before = ""
            before += paragraph[at:] + PARAGRAPH_BREAK


def compose(request: ChatRequest) -> EchoAnswer:
    scripted = script_turn(request)
    if scripted is not None:
        return EchoAnswer((scripted.text,), scripted.tool_call)
    last = request.messages[-1] if request.messages else None
    if last is not None and last.role is Role.TOOL:
        reports = [
            f"The tool {result.name} {'failed' if result.is_error else 'returned'}: "
            f"{result.content}"
            for result in last.tool_results
        ]
        return EchoAnswer((" ".join(reports) or "The tools returned nothing.",))
    prompt = request.prompt
    call = _tool_call(request, prompt)
    if call is not None:
        return EchoAnswer((f"Calling {call.name}.",), call)
    parts = [INTRO, prompt.strip() or "(nothing)"]
    if _ASKS_FOR_CODE.search(prompt):
        parts.extend(_code_blocks(prompt))
    parts.append(OUTRO)
    return EchoAnswer(tuple(parts))


def _tool_call(request: ChatRequest, prompt: str) -> ToolCall | None:
    match = _TOOL_DIRECTIVE.search(prompt)
    if match is None:
        return None
    name, raw_args = match.group(1), match.group(2).strip()
    if name not in {tool.name for tool in request.tools}:
        return None
    try:
        args = json.loads(raw_args) if raw_args else {}
    except json.JSONDecodeError:
        args = {"input": raw_args}
    if not isinstance(args, dict):
        args = {"input": args}
    earlier = sum(len(message.tool_calls) for message in request.messages)
    return ToolCall(f"echo-call-{earlier + 1}", name, json.dumps(args, sort_keys=True))


def _summary(prompt: str) -> str:
    line = " ".join(prompt.split())
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"


def _language(prompt: str, names: list[str]) -> str:
    if names:
        return _BY_EXTENSION[names[0].rsplit(".", 1)[1]]
    for pattern, language in _LANGUAGES:
        if pattern.search(prompt):
            return language
    return "python"


def _code_blocks(prompt: str) -> list[str]:
    names = list(dict.fromkeys(_FILENAME.findall(prompt)))
    language = _language(prompt, names)
    ext = _EXTENSIONS[language]
    two = len(names) >= 2 or bool(_ASKS_FOR_TWO_FILES.search(prompt))
    main = names[0] if names else f"main.{ext}"
    summary = _summary(prompt)
    if not two:
        return [f"Here is `{main}`:", _fence(language, main, _main_source(language, summary))]
    helper = names[1] if len(names) >= 2 else f"utils.{ext}"
    helper_lang = _BY_EXTENSION[helper.rsplit(".", 1)[1]]
    return [
        f"Here are two files. First `{helper}`:",
        _fence(helper_lang, helper, _helper_source(helper_lang)),
        f"Then `{main}`, which uses it:",
        _fence(language, main, _main_source(language, summary, helper)),
    ]


def _fence(language: str, filename: str, body: str) -> str:
    comment = "//" if language in ("javascript", "typescript") else "#"
    return f"```{language}\n{comment} file: {filename}\n{body}\n```"


def _module(helper: str) -> str | None:
    stem = helper.rsplit(".", 1)[0]
    return stem if stem.isidentifier() else None


def _helper_source(language: str) -> str:
    if language == "python":
        return 'def describe(request: str) -> str:\n    return f"You asked: {request}"'
    if language == "bash":
        return 'describe() {\n  printf "You asked: %s\\n" "$1"\n}'
    typed = "request: string" if language == "typescript" else "request"
    export = "export function describe" if language == "typescript" else "function describe"
    tail = "" if language == "typescript" else "\n\nmodule.exports = { describe };"
    return f"{export}({typed}) {{\n  return `You asked: ${{request}}`;\n}}{tail}"


def _main_source(language: str, summary: str, helper: str | None = None) -> str:
    module = _module(helper) if helper else None
    if language == "python":
        literal = repr(summary)
        if module:
            return (
                f"from {module} import describe\n\n\n"
                f"def main() -> None:\n    print(describe({literal}))\n\n\n"
                'if __name__ == "__main__":\n    main()'
            )
        return (
            f'def main() -> None:\n    print({literal})\n\n\nif __name__ == "__main__":\n    main()'
        )
    if language == "bash":
        quoted = shlex.quote(summary)
        if helper:
            return f'source "$(dirname "$0")/{helper}"\ndescribe {quoted}'
        return f"echo {quoted}"
    literal = json.dumps(summary, ensure_ascii=False)
    if helper and module:
        if language == "typescript":
            return f'import {{ describe }} from "./{module}";\n\nconsole.log(describe({literal}));'
        return f'const {{ describe }} = require("./{module}");\n\nconsole.log(describe({literal}));'
    return f"console.log({literal});"
