"""Settings of builds (esbuild in a node sandbox; owned by server/builds); Settings inherits
them."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

MiB = 1024 * 1024


class BuildSettings(BaseSettings):
    build_timeout_seconds: float = Field(
        60.0, gt=0, le=3600, description="longest a bundle may take in its sandbox"
    )
    build_max_output_bytes: int = Field(
        8 * MiB,
        ge=1024,
        description="largest total size of a build's output files (each is read back like "
        "ReadFile, so also at most sandbox_max_file_bytes)",
    )
    build_max_input_files: int = Field(500, ge=1, description="most source files one build takes")
    build_max_input_bytes: int = Field(
        4 * MiB,
        ge=1024,
        description="largest total size of a build's source files (they enter the sandbox as "
        "one archive, so keep it under sandbox_max_file_bytes)",
    )
