"""Settings of worker processes (FORGE_WORKERS); Settings inherits them."""

from __future__ import annotations

from pydantic_settings import BaseSettings


class WorkerSettings(BaseSettings):
    pass
