"""The build script of the node sandbox image (docker/sandbox/node/forge-build/build.mjs):
the command that unpacks the sources and runs it, and the reading of what it prints (one
JSON object per line: log, diagnostic, result)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from server.builds.events import BuildLog, BuildStatus, Diagnostic, Severity

BUILD_SCRIPT = "/opt/forge-build/build.mjs"
ARCHIVE = "sources.tar"
SOURCE_DIR = "src"
OUTPUT_DIR = "out"
# A line longer than this is cut (the exec output cap bounds the whole anyway).
MAX_LINE_BYTES = 256 * 1024


def build_command(entry: str | None) -> str:
    """Runs in /workspace: unpacks the sources into src/, bundles them into out/."""
    argv = ["node", BUILD_SCRIPT, "--root", f"/workspace/{SOURCE_DIR}"]
    argv += ["--out", f"/workspace/{OUTPUT_DIR}"]
    if entry is not None:
        argv += ["--entry", entry]
    return (
        f"set -e; mkdir -p {SOURCE_DIR} {OUTPUT_DIR}; "
        f"tar -xf {ARCHIVE} -C {SOURCE_DIR} --no-same-owner --no-same-permissions -m; "
        f"rm -f {ARCHIVE}; exec {shlex.join(argv)}"
    )


@dataclass(frozen=True, slots=True)
class ReportedOutput:
    path: str
    size: int


@dataclass(frozen=True, slots=True)
class ScriptResult:
    status: BuildStatus
    entry: str
    synthesized_entry: bool
    outputs: tuple[ReportedOutput, ...]


ScriptLine = BuildLog | Diagnostic | ScriptResult


class Lines:
    """Splits a stream's chunks into lines (decoded leniently; a very long one is cut)."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        if len(self._pending) > MAX_LINE_BYTES:
            lines.append(self._pending)
            self._pending = b""
        return [_decode(line) for line in lines if line.strip()]

    def close(self) -> list[str]:
        rest, self._pending = self._pending, b""
        return [_decode(rest)] if rest.strip() else []


def _decode(line: bytes) -> str:
    return line[:MAX_LINE_BYTES].decode("utf-8", "replace").rstrip()


class ScriptReader:
    """Turns the script's stdout, chunk by chunk, into what it reported; anything that is not
    one of its JSON objects is passed on as a log line."""

    def __init__(self) -> None:
        self._lines = Lines()

    def feed(self, chunk: bytes) -> list[ScriptLine]:
        return [read_line(line) for line in self._lines.feed(chunk)]

    def close(self) -> list[ScriptLine]:
        return [read_line(line) for line in self._lines.close()]


def read_line(text: str) -> ScriptLine:
    try:
        item = json.loads(text)
    except ValueError:
        return BuildLog(text)
    parsed = _parse(item) if isinstance(item, dict) else None
    return parsed if parsed is not None else BuildLog(text)


def _parse(item: dict[str, Any]) -> ScriptLine | None:
    kind = item.get("type")
    if kind == "log":
        return BuildLog(_text(item.get("message")))
    if kind == "diagnostic":
        severity = Severity.WARNING if item.get("severity") == "warning" else Severity.ERROR
        return Diagnostic(
            severity=severity,
            message=_text(item.get("message")),
            file=_text(item.get("file")),
            line=_count(item.get("line")),
            column=_count(item.get("column")),
        )
    if kind == "result":
        outputs = item.get("outputs")
        return ScriptResult(
            status=(
                BuildStatus.SUCCEEDED if item.get("status") == "succeeded" else BuildStatus.FAILED
            ),
            entry=_text(item.get("entry")),
            synthesized_entry=item.get("synthesized_entry") is True,
            outputs=tuple(
                ReportedOutput(_text(output.get("path")), _count(output.get("bytes")))
                for output in (outputs if isinstance(outputs, list) else [])
                if isinstance(output, dict)
            ),
        )
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
