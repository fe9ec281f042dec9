"""One answer's code blocks for the same file, consolidated into one: `consolidate(blocks)`.

Models often show a file in pieces ("first the imports and the model, then the route, then
the main guard"), or one language's code in several unnamed blocks. Each file then gets one
artifact version with the whole file, not one version (or one `main_2.py`) per piece; the
answer's text, blocks and all, is stored as it was.

Which blocks go together:
- blocks that name the same file (`# file: app.py`, `python title="app.py"`, ...);
- unnamed blocks of one language that can be merged (Python, JavaScript, TypeScript, JSX,
  TSX, CSS, SCSS): they become the file the first of them was named after (`main.py`).
Unnamed blocks of other languages stay apart (two JSON documents do not make one); named
blocks of those languages: the last block is the file (a rewrite).

How a group is merged (line-based and lenient, like extraction: "where detectable"):
- Each block is cut into top-level units: a unit starts at a non-blank line without
  indentation and takes the indented, blank and closing-bracket lines after it (and lines
  inside brackets or triple-quoted strings left open); comments and decorators just above
  a unit belong to it.
- Imports (and directives such as `"use client"`) go first, each once, in the order first
  seen; `from __future__` imports before the rest.
- A unit that defines a name an earlier unit defined (a function, class, component,
  `const`, interface, type, CSS selector, `export default`) replaces the earlier one where
  it stood: the later block is the newer code. Other units are kept once each.
- A later block that defines every name the file defined so far is the whole file again,
  rewritten: it replaces what came before instead of being merged into it.
- A Python main guard (`if __name__ == "__main__":`) goes last, so that it runs after
  every definition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from server.artifacts.extract import CodeBlock

_PYTHON = "python"
_SCRIPT = frozenset({"javascript", "typescript", "jsx", "tsx"})
_STYLE = frozenset({"css", "scss"})
MERGEABLE = frozenset({_PYTHON, *_SCRIPT, *_STYLE})

_PY_IMPORT = re.compile(r"^(?:import\s|from\s+\S+\s+import\b)")
_PY_FUTURE = re.compile(r"^from\s+__future__\s+import\b")
_PY_DEFINITION = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)")
_PY_MAIN = re.compile(r"""^if\s+__name__\s*==\s*["']__main__["']\s*:""")
_JS_IMPORT = re.compile(r"""^import(?:\s|["'{*])""")
_JS_IMPORT_STATEMENT = re.compile(
    r"""import\s+(?:(?P<default>[A-Za-z_$][\w$]*)\s*,?\s*)?(?:\{(?P<names>[^}]*)\}\s*)?"""
    r"""from\s+(?P<quote>["'])(?P<module>[^"']+)(?P=quote)\s*;?"""
)
_JS_DIRECTIVE = re.compile(r"""^["']use (?:client|server|strict)["'];?\s*$""")
_JS_DEFINITION = re.compile(
    r"^(?:export\s+)?(?:default\s+)?(?:declare\s+)?(?:async\s+)?(?:abstract\s+)?"
    r"(?:function\*?|class|const|let|var|interface|type|enum)\s+([A-Za-z_$][\w$]*)"
)
_JS_DEFAULT = re.compile(r"^export\s+default\b")
_CSS_IMPORT = re.compile(r"^@(?:import|charset|use|forward)\b")
_CSS_RULE = re.compile(r"^([^{};]+?)\s*\{")
_CLOSERS = (")", "]", "}")
_TRIPLE_QUOTES = ('"""', "'''")
_MAIN_KEY = "__main__"


@dataclass
class _Unit:
    lines: list[str]
    blank_before: int
    keys: frozenset[str]
    is_import: bool = False
    is_future: bool = False
    starts_block: bool = False

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def consolidate(blocks: Iterable[CodeBlock]) -> list[CodeBlock]:
    """The blocks with each file's pieces merged into one block, in the order each file
    first appeared (rules in the module doc)."""
    groups: dict[tuple[str, str], list[CodeBlock]] = {}
    for block in blocks:
        groups.setdefault(_group_key(block), []).append(block)
    return [_merged(group) for group in groups.values()]


def _group_key(block: CodeBlock) -> tuple[str, str]:
    if block.named:
        return ("file", block.filename)
    if block.language in MERGEABLE:
        return ("language", block.language)
    return ("block", block.filename)  # numbered apart already: main.json, main_2.json


def _merged(group: list[CodeBlock]) -> CodeBlock:
    first, last = group[0], group[-1]
    if len(group) == 1:
        return first
    complete = all(block.complete for block in group)
    if first.language not in MERGEABLE:
        return replace(last, title=first.title, filename=first.filename, complete=complete)
    file = _File(first.language)
    for block in group:
        file.add(_units(block.content, block.language))
    return replace(first, content=file.render(), complete=complete)


class _File:
    def __init__(self, language: str) -> None:
        self._python = language == _PYTHON
        self._imports: list[_Unit] = []
        self._body: list[_Unit] = []

    def add(self, units: list[_Unit]) -> None:
        defined = {key for unit in self._body for key in unit.keys}
        offered = {key for unit in units for key in unit.keys}
        if defined and defined <= offered:  # the whole file again
            self._imports, self._body = [], []
        for unit in units:
            if unit.is_import:
                self._import(unit)
            else:
                self._place(unit)

    def _import(self, unit: _Unit) -> None:
        text = _normalised(unit)
        if any(text == _normalised(known) for known in self._imports):
            return
        wanted = _JsImport.parse(text)
        for known in self._imports:
            merged = wanted and wanted.merged_with(_JsImport.parse(_normalised(known)))
            if merged:  # `import React` and `import React, { useState }` of one module
                known.lines = [merged]
                return
        self._imports.append(unit)

    def _place(self, unit: _Unit) -> None:
        if unit.keys:
            clashing = [i for i, known in enumerate(self._body) if known.keys & unit.keys]
            if clashing:
                unit.blank_before = self._body[clashing[0]].blank_before
                unit.starts_block = self._body[clashing[0]].starts_block
                self._body[clashing[0]] = unit
                for index in reversed(clashing[1:]):
                    del self._body[index]
                return
        elif any(_normalised(unit) == _normalised(known) for known in self._body):
            return
        self._body.append(unit)

    def render(self) -> str:
        imports = sorted(self._imports, key=lambda unit: not unit.is_future)
        body = [unit for unit in self._body if _MAIN_KEY not in unit.keys]
        body += [unit for unit in self._body if _MAIN_KEY in unit.keys]
        gap = 2 if self._python else 1  # blank lines between pieces of different blocks
        text = "\n".join(unit.text for unit in imports)
        for unit in body:
            if text:
                blank = gap if unit.starts_block or unit is body[0] else unit.blank_before
                text += "\n" * (blank + 1)
            text += unit.text
        return text + "\n"


@dataclass(frozen=True)
class _JsImport:
    """`import Default, { a, b as c } from "module";` (no namespace or type imports)."""

    module: str
    quote: str
    default: str
    names: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> _JsImport | None:
        statement = _JS_IMPORT_STATEMENT.fullmatch(text)
        if statement is None:
            return None
        names = tuple(n.strip() for n in (statement["names"] or "").split(",") if n.strip())
        return cls(statement["module"], statement["quote"], statement["default"] or "", names)

    def merged_with(self, other: _JsImport | None) -> str | None:
        """One statement importing what both do, if they import from the same module and
        do not give its default export different names."""
        if other is None or other.module != self.module:
            return None
        if self.default and other.default and self.default != other.default:
            return None
        default = other.default or self.default
        names = other.names + tuple(name for name in self.names if name not in other.names)
        clause = ", ".join(
            ([default] if default else []) + ([f"{{ {', '.join(names)} }}"] if names else [])
        )
        return f"import {clause} from {other.quote}{other.module}{other.quote};"


def _normalised(unit: _Unit) -> str:
    return " ".join(unit.text.split())


@dataclass(frozen=True)
class _Syntax:
    comments: tuple[str, ...]  # line starts that attach to the next unit
    line_comment: str
    triple_quotes: bool
    template_strings: bool


_SYNTAX = {
    "python": _Syntax(("#", "@"), "#", triple_quotes=True, template_strings=False),
    "script": _Syntax(("//", "/*", "*", "@"), "//", triple_quotes=False, template_strings=True),
    "style": _Syntax(("/*", "*", "//"), "//", triple_quotes=False, template_strings=False),
}


def _family(language: str) -> str:
    if language == _PYTHON:
        return "python"
    return "script" if language in _SCRIPT else "style"


def _units(content: str, language: str) -> list[_Unit]:
    """The top-level units of one block's content."""
    family = _family(language)
    syntax = _SYNTAX[family]
    found: list[tuple[list[str], int, str]] = []  # lines, blank lines before, first code line
    current: list[str] | None = None
    current_blank, head = 0, ""
    pending: list[str] = []
    pending_blank = blank = 0
    depth, open_string = 0, ""

    def close() -> None:
        nonlocal current, blank
        assert current is not None
        while not current[-1].strip():
            current.pop()
            blank += 1
        found.append((current, current_blank, head))
        current = None

    for line in content.split("\n"):
        stripped = line.strip()
        if current is not None and (
            depth > 0
            or open_string
            or not stripped
            or line[0] in " \t"
            or stripped.startswith(_CLOSERS)
        ):
            current.append(line)
            depth, open_string = _scan(line, depth, open_string, syntax)
            continue
        if current is not None:
            close()
        if not stripped:
            blank += 1
            continue
        if stripped.startswith(syntax.comments):
            if not pending:
                pending_blank = blank
            pending.append(line)
            blank = 0
            continue
        current, head = [*pending, line], stripped
        current_blank = pending_blank if pending else blank
        pending, blank = [], 0
        depth, open_string = _scan(line, 0, "", syntax)
    if current is not None:
        close()
    if pending:
        found.append((pending, pending_blank, ""))
    units = [_unit(lines, blank_before, first, family) for lines, blank_before, first in found]
    first_code = next((unit for unit in units if not unit.is_import), None)
    if first_code is not None:
        first_code.starts_block = True
    return units


def _unit(lines: list[str], blank_before: int, head: str, family: str) -> _Unit:
    keys: set[str] = set()
    is_import = is_future = False
    if family == "python":
        is_import = bool(_PY_IMPORT.match(head))
        is_future = bool(_PY_FUTURE.match(head))
        if definition := _PY_DEFINITION.match(head):
            keys.add(definition[1])
        elif _PY_MAIN.match(head):
            keys.add(_MAIN_KEY)
    elif family == "script":
        is_import = bool(_JS_IMPORT.match(head))
        is_future = bool(_JS_DIRECTIVE.match(head))  # directives lead, like __future__
        is_import = is_import or is_future
        if definition := _JS_DEFINITION.match(head):
            keys.add(definition[1])
        if _JS_DEFAULT.match(head):
            keys.add("export default")
    else:
        is_import = bool(_CSS_IMPORT.match(head))
        if not is_import and (rule := _CSS_RULE.match(head)):
            keys.add(" ".join(rule[1].split()))
    return _Unit(lines, blank_before, frozenset(keys), is_import, is_future)


def _scan(line: str, depth: int, open_string: str, syntax: _Syntax) -> tuple[int, str]:
    """Bracket depth and the string left open (a triple quote or a template literal's
    backtick) after `line`; quotes on one line and line comments are skipped."""
    index = 0
    while index < len(line):
        if open_string:
            if line.startswith(open_string, index):
                index += len(open_string)
                open_string = ""
            else:
                index += 2 if line[index] == "\\" else 1
            continue
        if syntax.triple_quotes and line.startswith(_TRIPLE_QUOTES, index):
            open_string = line[index : index + 3]
            index += 3
            continue
        char = line[index]
        if char == "`" and syntax.template_strings:
            open_string = "`"
        elif char in "\"'":
            index += 1
            while index < len(line) and line[index] != char:
                index += 2 if line[index] == "\\" else 1
        elif line.startswith(syntax.line_comment, index):
            break
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        index += 1
    return depth, open_string
