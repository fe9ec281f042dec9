"""A build's output files: their content types, and reading them back from the sandbox
within the output limits."""

from __future__ import annotations

import mimetypes
import posixpath
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from server.builds.events import Diagnostic, OutputFile, Severity
from server.builds.limits import BuildLimits
from server.builds.script import OUTPUT_DIR, ReportedOutput
from server.core.context import Caller
from server.core.ports import SandboxPort

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}


def content_type(path: str) -> str:
    extension = posixpath.splitext(path)[1].lower()
    if extension in _TYPES:
        return _TYPES[extension]
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ReadBack:
    outputs: tuple[OutputFile, ...]
    problems: tuple[Diagnostic, ...]
    """Non-empty: over a limit (nothing was read) or not where the script said."""


async def read_outputs(
    port: SandboxPort,
    caller: Caller,
    sandbox_id: uuid.UUID,
    reported: Sequence[ReportedOutput],
    limits: BuildLimits,
) -> ReadBack:
    problems = _over_limits(reported, limits)
    if problems:
        return ReadBack((), problems)
    outputs = []
    total = 0
    for output in reported:
        content = await port.read_file(caller, sandbox_id, f"{OUTPUT_DIR}/{output.path}")
        total += len(content)
        if total > limits.max_output_bytes:  # grew since it was reported
            return ReadBack((), (_too_large(total, limits),))
        outputs.append(OutputFile(output.path, content, content_type(output.path)))
    return ReadBack(tuple(outputs), ())


def _over_limits(reported: Sequence[ReportedOutput], limits: BuildLimits) -> tuple[Diagnostic, ...]:
    for output in reported:
        if not _plain_relative(output.path):
            return (
                Diagnostic(Severity.ERROR, f"the build reported an odd output {output.path!r}"),
            )
    total = sum(output.size for output in reported)
    if total > limits.max_output_bytes:
        return (_too_large(total, limits),)
    for output in reported:
        if output.size > limits.max_output_file_bytes:
            return (
                Diagnostic(
                    Severity.ERROR,
                    f"the output {output.path} is {output.size} bytes, more than the "
                    f"{limits.max_output_file_bytes} bytes one output file may have",
                ),
            )
    return ()


def _too_large(total: int, limits: BuildLimits) -> Diagnostic:
    return Diagnostic(
        Severity.ERROR,
        f"the build's output is {total} bytes, more than the limit of "
        f"{limits.max_output_bytes} bytes",
    )


def _plain_relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and all(p not in ("", ".", "..") for p in parts)
