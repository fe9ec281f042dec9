"""The test harness: one embedded PostgreSQL per session, the real server in-process on an
ephemeral port, channels to it, and a real Envoy in front of it."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.app import ForgeServer
from server.config import Settings
from server.db.embedded import EmbeddedPostgres
from tests.sandbox.support import namespace
from tests.support.accounts import Account, login, register
from tests.support.mailbox import Mailbox, SmtpServer
from tests.support.testing_service import TEST_MODULES, TESTING_SERVICE

# Every test server (in-process and child processes, which inherit the environment)
# registers its accounts from loopback into the one test database: the hourly limit per
# address is lifted, except where a test sets its own (tests/test_limits.py).
os.environ.setdefault("FORGE_REGISTRATIONS_PER_ADDRESS_PER_HOUR", "1000000")
# In-process test servers share their event loop with the tests' clients on a busy machine:
# their streams do not hold deltas to shed load (tests/test_load_shedding.py turns it on),
# so tests of pacing see every delta as it was made.
os.environ.setdefault("FORGE_STREAM_MAX_HOLD_MS", "0")

REPO_ROOT = Path(__file__).resolve().parents[1]
DESCRIPTOR = REPO_ROOT / "gen" / "forge.binpb"
TEST_DESCRIPTOR = REPO_ROOT / "gen" / "forge-test.binpb"
"""The production descriptor set plus the test-only TestingService."""


@pytest.fixture(scope="session")
async def postgres(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("postgres") / "pgdata", delete_on_stop=True)
    await pg.start()
    yield pg
    await pg.stop()


@pytest.fixture(scope="session")
async def database_url(postgres: EmbeddedPostgres) -> str:
    return await postgres.ensure_database("forge_test")


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "listen_address": "127.0.0.1:0",
        "database_url": database_url,
        "data_dir": data_dir,
        "log_format": "text",
        "log_level": "WARNING",
        "jwt_secret": secrets.token_hex(32),
        "bcrypt_rounds": 4,
        "shutdown_grace_seconds": 1.0,
        "shutdown_drain_seconds": 0.0,
        # Sandbox containers of this test run are kept apart from any other server's, and
        # no warm pool is started unless a test asks for one.
        "sandbox_namespace": namespace("main"),
        "sandbox_pool_size": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mailbox(smtp: SmtpServer) -> Mailbox:
    return smtp.mailbox


ADMIN_EMAIL = "first-admin@example.com"


@pytest.fixture(scope="session")
async def forge(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer
) -> AsyncIterator[ForgeServer]:
    settings = make_settings(database_url, tmp_path_factory.mktemp("forge-data"), smtp_url=smtp.url)
    app = ForgeServer(settings, TEST_MODULES)
    await app.start()
    # The first account of an empty database becomes admin: make that deterministic.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as chan:
        await register(chan, email=ADMIN_EMAIL, display_name="First Admin")
    yield app
    await app.stop(grace=0)


@pytest.fixture(scope="session")
async def channel(forge: ForgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{forge.port}") as chan:
        yield chan


@pytest.fixture(scope="session")
async def admin(channel: grpc.aio.Channel) -> Account:
    return await login(channel, ADMIN_EMAIL)


@pytest.fixture
async def user(channel: grpc.aio.Channel) -> Account:
    """A fresh, signed-in, non-admin account."""
    return await register(channel)


@pytest.fixture(scope="session")
async def envoy(forge: ForgeServer) -> AsyncIterator[EnvoyProcess]:
    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=forge.port,
        descriptor_path=TEST_DESCRIPTOR,
        listen_host="127.0.0.1",
        # The tests' gateway also serves TestingService (the production one never does).
        extra_services=[TESTING_SERVICE],
        extra_streaming_paths=[f"/{TESTING_SERVICE}/StreamTicks"],
    )
    async with EnvoyProcess(config) as proc:
        yield proc


@pytest.fixture
async def http(envoy: EnvoyProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=envoy.base_url) as session:
        yield session
