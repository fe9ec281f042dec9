"""The limits of one build, from Settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from server.config import Settings


@dataclass(frozen=True, slots=True)
class BuildLimits:
    timeout: timedelta
    max_input_files: int
    max_input_bytes: int
    max_output_bytes: int
    max_output_file_bytes: int
    """Each output file is read back from the sandbox like ReadFile, within its size limit."""

    @classmethod
    def from_settings(cls, settings: Settings) -> BuildLimits:
        return cls(
            timeout=timedelta(seconds=settings.build_timeout_seconds),
            max_input_files=settings.build_max_input_files,
            max_input_bytes=settings.build_max_input_bytes,
            max_output_bytes=settings.build_max_output_bytes,
            max_output_file_bytes=settings.sandbox_max_file_bytes,
        )
