"""A Forge server of a test module's own (its own settings and database), for tests that
need settings the shared servers do not have."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc

from server.app import ForgeServer
from tests.conftest import make_settings
from tests.support.accounts import register
from tests.support.testing_service import TEST_MODULES


@asynccontextmanager
async def own_server(
    database_url: str, data_dir: Path, admin_name: str, **settings: Any
) -> AsyncIterator[ForgeServer]:
    """Serves until the block ends. Its first account (the admin) is registered here, so
    that no account of the tests is one."""
    app = ForgeServer(make_settings(database_url, data_dir, **settings), TEST_MODULES)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as chan:
            await register(chan, display_name=admin_name)
        yield app
    finally:
        await app.stop(grace=0)
