"""The editor's text operations, pure functions of a file's text. Lines are numbered from
1; a failure raises EditError with a message the model can act on."""

from __future__ import annotations

from collections.abc import Sequence

SNIPPET_CONTEXT = 4


class EditError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def lines_of(text: str) -> list[str]:
    """The file's lines without their line breaks (a final newline ends the last line)."""
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


def numbered(lines: Sequence[str], first: int = 1) -> str:
    """`     1\\tline` per line, numbered from `first`."""
    return "\n".join(f"{number:6}\t{line}" for number, line in enumerate(lines, start=first))


def view(text: str, view_range: Sequence[int] | None) -> str:
    lines = lines_of(text)
    if view_range is None:
        return numbered(lines)
    start, end = view_range
    count = len(lines)
    if start < 1 or start > max(count, 1):
        raise EditError(
            f"view_range starts at line {start}, but the file has {count} lines "
            f"(lines are numbered from 1)"
        )
    if end != -1 and end < start:
        raise EditError(f"view_range ends at line {end}, before its start {start}")
    stop = count if end == -1 else min(end, count)
    return numbered(lines[start - 1 : stop], first=start)


def replace_once(text: str, old: str, new: str, path: str) -> tuple[str, int]:
    """The text with the one occurrence of `old` replaced, and the line where it was."""
    found = _occurrences(text, old)
    count = len(found)
    if count == 0:
        raise EditError(
            f"old_str was not found in {path}; it must match the file exactly, including "
            "whitespace and indentation (view the file to copy it)"
        )
    if count > 1:
        lines = [text.count("\n", 0, at) + 1 for at in found[:10]]
        raise EditError(
            f"old_str occurs {count} times in {path} (at lines "
            f"{', '.join(map(str, lines))}); include more surrounding lines to make "
            "it unique"
        )
    at = found[0]
    return text[:at] + new + text[at + len(old) :], text.count("\n", 0, at) + 1


def insert_after(text: str, line: int, new: str, path: str) -> str:
    """The text with `new` inserted after line `line` (0: at the top)."""
    lines = lines_of(text)
    if line > len(lines):
        raise EditError(
            f"insert_line {line} is past the end of {path}, which has {len(lines)} lines "
            f"(use 0 to {len(lines)})"
        )
    ends_with_newline = not text or text.endswith("\n")
    inserted = lines_of(new) if new else [""]
    result = [*lines[:line], *inserted, *lines[line:]]
    return "\n".join(result) + ("\n" if ends_with_newline else "")


def snippet(text: str, first_line: int, last_line: int) -> str:
    """Numbered lines around first_line..last_line (to show the model what changed)."""
    lines = lines_of(text)
    start = max(first_line - SNIPPET_CONTEXT, 1)
    stop = min(last_line + SNIPPET_CONTEXT, len(lines))
    return numbered(lines[start - 1 : stop], first=start)


def _occurrences(text: str, old: str) -> list[int]:
    """Where `old` starts in `text`, overlapping matches included (they are ambiguous too)."""
    found: list[int] = []
    at = text.find(old)
    while at != -1:
        found.append(at)
        at = text.find(old, at + 1)
    return found
