"""What a build streams: log lines and diagnostics as they come, then one BuildResult."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TypeAlias


class BuildStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class BuildLog:
    message: str
    stderr: bool = False
    """True for what the build process wrote on stderr (e.g. a crash's trace)."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    file: str = ""
    """Relative to the project root; empty when the problem has no place in a file."""
    line: int = 0
    """1-based; 0 without a place."""
    column: int = 0
    """1-based; 0 without a place."""


@dataclass(frozen=True, slots=True)
class OutputFile:
    path: str
    """Relative to the output directory: bundle.js, bundle.css, assets/…"""
    content: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class BuildResult:
    status: BuildStatus
    diagnostics: tuple[Diagnostic, ...]
    outputs: tuple[OutputFile, ...]
    entry: str
    """The entry point used (relative to the project root); empty if none was found."""
    synthesized_entry: bool
    """True: `entry` default-exports a component, rendered into #root by a generated entry."""
    duration: timedelta

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)

    def output(self, path: str) -> OutputFile | None:
        return next((output for output in self.outputs if output.path == path), None)


BuildEvent: TypeAlias = BuildLog | Diagnostic | BuildResult
