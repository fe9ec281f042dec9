"""Code blocks of a chat answer, as artifact candidates: `extract_code_blocks(markdown)`.

Rules (a pure function; CommonMark fences, with the leniency model output needs):
- A fence is a line of >= 3 backticks or >= 3 tildes, indented by any amount (fences inside
  list items are common); an info string may follow (`python`, `python title="app.py"`,
  `python:app.py`, `{.python}`, `app.py`). A backtick fence's info string has no backticks,
  so "```inline``` text" is not a fence. The block ends at a line of the same character, at
  least as long, and nothing else; an inner fence that is shorter or of the other character
  is content (how a markdown answer shows ``` inside ````). Up to the opening fence's
  indentation is removed from each content line.
- A fence left open runs to the end of the answer (as CommonMark renders it), and the block
  is marked `complete=False` (an answer cut short).
- Blocks with only blank lines are skipped. Line endings (CRLF, CR) become LF, leading and
  trailing blank lines are dropped, and content ends with one newline.
- Filename: from a hint on the first content line, `# file: x.py`, `// file: x.js`,
  `<!-- file: x.html -->`, `/* file: x.css */`, `-- file: x.sql`, `; file: x.ini` (also
  `filename:`), or from the info string (`file=`/`filename=`, `title=` when it looks
  like a file name, `lang:name`). The hint line is removed from the content: it would break
  a shebang, a JSON file, a doctype. Paths keep their folders but lose leading `/`, `.` and
  `..` parts and odd characters. Otherwise the name comes from the language (`python` ->
  `main.py`, ...), numbered from the second block that would take the same name in one
  answer (`main_2.py`). Explicit names are kept even when repeated: the later block is a
  newer version of the same file.
- Language: the info string's first word, lower-cased, with aliases folded (`py` ->
  `python`, `js` -> `javascript`, ...); if absent, guessed from the filename's extension;
  otherwise "".
- Title: the nearest non-empty text line above the block and below the previous block,
  without markdown decoration (`#`, `>`, list markers, `**`, backticks, a trailing colon),
  at most 100 characters; the filename when there is none.
- Kind: "html"; "react" for jsx/tsx/react; "markdown"; "code" for anything else. The
  content type is a bare MIME type (no charset): text/x-python, text/javascript, ...
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

MAX_TITLE = 100
MAX_FILENAME = 255


@dataclass(frozen=True)
class CodeBlock:
    language: str
    filename: str
    title: str
    content: str
    kind: str
    content_type: str
    complete: bool = True
    """False when the answer ended inside the block (the fence was never closed)."""
    named: bool = False
    """True when the answer named the file (a hint or the info string); False when the
    name came from the language."""


@dataclass(frozen=True)
class _Language:
    filename: str
    content_type: str
    kind: str = "code"
    extensions: tuple[str, ...] = ()


_LANGUAGES: dict[str, _Language] = {
    "python": _Language("main.py", "text/x-python", extensions=(".py", ".pyw")),
    "javascript": _Language("main.js", "text/javascript", extensions=(".js", ".mjs", ".cjs")),
    "typescript": _Language("main.ts", "text/typescript", extensions=(".ts", ".mts")),
    "jsx": _Language("App.jsx", "text/javascript", "react", (".jsx",)),
    "tsx": _Language("App.tsx", "text/typescript", "react", (".tsx",)),
    "html": _Language("index.html", "text/html", "html", (".html", ".htm")),
    "css": _Language("styles.css", "text/css", extensions=(".css",)),
    "scss": _Language("styles.scss", "text/x-scss", extensions=(".scss",)),
    "markdown": _Language("README.md", "text/markdown", "markdown", (".md", ".markdown")),
    "json": _Language("data.json", "application/json", extensions=(".json",)),
    "yaml": _Language("config.yaml", "application/yaml", extensions=(".yaml", ".yml")),
    "toml": _Language("config.toml", "application/toml", extensions=(".toml",)),
    "xml": _Language("data.xml", "application/xml", extensions=(".xml",)),
    "svg": _Language("image.svg", "image/svg+xml", extensions=(".svg",)),
    "sql": _Language("query.sql", "application/sql", extensions=(".sql",)),
    "bash": _Language("script.sh", "text/x-shellscript", extensions=(".sh", ".bash")),
    "powershell": _Language("script.ps1", "text/plain", extensions=(".ps1",)),
    "go": _Language("main.go", "text/x-go", extensions=(".go",)),
    "rust": _Language("main.rs", "text/x-rust", extensions=(".rs",)),
    "java": _Language("Main.java", "text/x-java", extensions=(".java",)),
    "kotlin": _Language("Main.kt", "text/x-kotlin", extensions=(".kt", ".kts")),
    "c": _Language("main.c", "text/x-c", extensions=(".c", ".h")),
    "cpp": _Language("main.cpp", "text/x-c++", extensions=(".cpp", ".cc", ".cxx", ".hpp")),
    "csharp": _Language("Program.cs", "text/x-csharp", extensions=(".cs",)),
    "ruby": _Language("main.rb", "text/x-ruby", extensions=(".rb",)),
    "php": _Language("index.php", "text/x-php", extensions=(".php",)),
    "swift": _Language("main.swift", "text/x-swift", extensions=(".swift",)),
    "lua": _Language("main.lua", "text/x-lua", extensions=(".lua",)),
    "r": _Language("script.R", "text/plain", extensions=(".r",)),
    "dockerfile": _Language("Dockerfile", "text/plain"),
    "makefile": _Language("Makefile", "text/plain"),
    "csv": _Language("data.csv", "text/csv", extensions=(".csv",)),
    "text": _Language("snippet.txt", "text/plain", extensions=(".txt",)),
}

_ALIASES = {
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "node": "javascript",
    "ts": "typescript",
    "react": "jsx",
    "htm": "html",
    "xhtml": "html",
    "md": "markdown",
    "yml": "yaml",
    "sh": "bash",
    "shell": "bash",
    "zsh": "bash",
    "console": "bash",
    "ps1": "powershell",
    "golang": "go",
    "rs": "rust",
    "kt": "kotlin",
    "c++": "cpp",
    "cc": "cpp",
    "cs": "csharp",
    "c#": "csharp",
    "rb": "ruby",
    "docker": "dockerfile",
    "make": "makefile",
    "plaintext": "text",
    "txt": "text",
    "plain": "text",
}

_BY_EXTENSION = {ext: name for name, lang in _LANGUAGES.items() for ext in lang.extensions}
_BY_FILENAME = {"dockerfile": "dockerfile", "makefile": "makefile"}

_UNKNOWN = _Language("snippet.txt", "text/plain")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HINT = re.compile(
    r"^\s*(?:#|//|--|;|<!--|/\*)\s*(?:file(?:name)?)\s*:\s*(?P<name>[^\s*<>]+)"
    r"\s*(?:-->|\*/)?\s*$",
    re.IGNORECASE,
)
_INFO_NAME = re.compile(
    r"""\b(?P<key>file(?:name)?|title|name)\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s}]+))"""
)
_SAFE_NAME = re.compile(r"[^\w.\-/+@]")
_DECORATION = re.compile(r"^(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)+")


def extract_code_blocks(markdown_text: str) -> list[CodeBlock]:
    """The fenced code blocks of `markdown_text`, in order (rules in the module doc)."""
    lines = _LINE_BREAK.split(markdown_text)
    blocks: list[CodeBlock] = []
    used_names: set[str] = set()
    text_since_block: list[str] = []
    index = 0
    while index < len(lines):
        opening = _opening_fence(lines[index])
        if opening is None:
            text_since_block.append(lines[index])
            index += 1
            continue
        indent, fence, info = opening
        body: list[str] = []
        index += 1
        complete = False
        while index < len(lines):
            line = lines[index]
            index += 1
            if _closes(line, fence):
                complete = True
                break
            body.append(_dedent(line, indent))
        block = _make_block(body, info, _title(text_since_block), complete, used_names)
        text_since_block = []
        if block is not None:
            blocks.append(block)
    return blocks


def _opening_fence(line: str) -> tuple[int, str, str] | None:
    match = _FENCE.match(line)
    if match is None:
        return None
    fence, info = match["fence"], match["info"].strip()
    if fence[0] == "`" and "`" in info:
        return None
    return len(match["indent"].expandtabs(4)), fence, info


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return (
        len(stripped) >= len(fence)
        and stripped[0] == fence[0]
        and stripped == fence[0] * len(stripped)
    )


def _dedent(line: str, indent: int) -> str:
    removed = 0
    position = 0
    while position < len(line) and removed < indent and line[position] in " \t":
        removed += 4 - removed % 4 if line[position] == "\t" else 1
        position += 1
    return line[position:]


def _make_block(
    body: list[str], info: str, title: str, complete: bool, used_names: set[str]
) -> CodeBlock | None:
    if not any(line.strip() for line in body):
        return None
    language, info_name = _parse_info(info)
    hinted = _HINT.match(body[0])
    if hinted:
        body = body[1:]
        if not any(line.strip() for line in body):
            return None
    requested = _clean_filename(hinted["name"] if hinted else info_name)
    if not language and requested:
        language = language_of(requested)
    spec = _LANGUAGES.get(language, _UNKNOWN)
    filename = requested or _numbered(spec.filename, used_names)
    used_names.add(filename)
    while body and not body[-1].strip():
        body.pop()
    while body and not body[0].strip():
        body.pop(0)
    return CodeBlock(
        language=language,
        filename=filename,
        title=title or filename,
        content="\n".join(body) + "\n",
        kind=spec.kind,
        content_type=spec.content_type,
        complete=complete,
        named=requested is not None,
    )


def _parse_info(info: str) -> tuple[str, str | None]:
    """The language and any file name an info string gives."""
    if not info:
        return "", None
    first = info.split()[0].strip("{}").lstrip(".")
    word, _, suffix = first.partition(":")
    name = suffix or None
    for match in _INFO_NAME.finditer(info):
        value = match["dq"] if match["dq"] is not None else match["sq"] or match["bare"] or ""
        is_path = "." in value and " " not in value.strip()
        if match["key"].startswith("file") or is_path:  # a title may be prose
            name = value.strip()
            break
    language = _canonical_language(word)
    if language not in _LANGUAGES and language_of(word):  # "```app.py"
        return language_of(word), name or word
    return language, name


def _canonical_language(word: str) -> str:
    lowered = word.lower()
    if not lowered or not re.fullmatch(r"[\w+#.\-]+", lowered):
        return ""
    return _ALIASES.get(lowered, lowered)


def language_of(filename: str) -> str:
    """The language a file name suggests (by extension, or Dockerfile/Makefile), else ""."""
    path = PurePosixPath(filename)
    by_name = _BY_FILENAME.get(path.name.lower())
    return by_name or _BY_EXTENSION.get(path.suffix.lower(), "")


def _clean_filename(name: str | None) -> str | None:
    """A relative path without `..`, odd characters or a leading slash; None if nothing
    usable is left."""
    if not name:
        return None
    cleaned = _SAFE_NAME.sub("_", name.replace("\\", "/"))
    parts = [p for p in posixpath.normpath("/" + cleaned).split("/") if p not in ("", ".", "..")]
    result = "/".join(parts)[:MAX_FILENAME]
    return result or None


def _numbered(filename: str, used: set[str]) -> str:
    if filename not in used:
        return filename
    path = PurePosixPath(filename)
    stem, suffix = (path.stem, path.suffix) if path.suffix else (path.name, "")
    counter = 2
    while f"{stem}_{counter}{suffix}" in used:
        counter += 1
    return f"{stem}_{counter}{suffix}"


def _title(text_lines: list[str]) -> str:
    """The nearest non-empty line of prose, undecorated and at most MAX_TITLE long."""
    for line in reversed(text_lines):
        text = _DECORATION.sub("", line.strip())
        text = text.replace("**", "").replace("__", "").replace("`", "")
        text = text.strip().rstrip(":").strip()
        if text.strip("`*_~-=#>|: "):
            if len(text) > MAX_TITLE:
                text = text[: MAX_TITLE - 1].rstrip() + "…"
            return text
    return ""
