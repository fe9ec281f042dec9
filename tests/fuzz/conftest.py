"""The fuzzed server: `python -m server` (exactly the services it binds) as a child process
on an ephemeral port, on its own database of the session's PostgreSQL, with real Docker
sandboxes and the loopback fake Anthropic and Gemini providers; and the seeded world of its
authenticated fuzzing user.

Hypothesis profiles: "ci" (default, bounded so `make test` stays fast and reproducible) and
"long" (`FORGE_FUZZ_PROFILE=long`, what `make fuzz` runs).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

import docker
from server.db.embedded import EmbeddedPostgres
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fuzz.calls import bound_rpcs
from tests.fuzz.world import World, build_world
from tests.sandbox.support import managed_containers, namespace

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

_SLOW_IS_FINE = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
    HealthCheck.filter_too_much,
]
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_SLOW_IS_FINE,
    print_blob=False,
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    database=DirectoryBasedExampleDatabase("/tmp/forge-fuzz-examples"),  # noqa: S108
    suppress_health_check=_SLOW_IS_FINE,
)
settings.register_profile(
    "chosen",
    parent=settings.get_profile(os.environ.get("FORGE_FUZZ_PROFILE", "ci")),
    # FORGE_FUZZ_EXAMPLES: examples per RPC, overriding the profile's (e.g. a shorter long run)
    **(
        {"max_examples": int(os.environ["FORGE_FUZZ_EXAMPLES"])}
        if os.environ.get("FORGE_FUZZ_EXAMPLES")
        else {}
    ),
)
settings.load_profile("chosen")


class _LoopThread:
    """An event loop of its own for the fake providers: the fuzz tests are synchronous
    (blocking grpc), so nothing else would run their aiohttp servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class FuzzedServer:
    """`python -m server`; its log goes to a file (a pipe nobody reads would fill)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server"],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=self._file,
        )
        self.port = self._wait_for_port(deadline=time.monotonic() + 90)

    def _wait_for_port(self, deadline: float) -> int:
        while time.monotonic() < deadline:
            found = re.search(rb"forge: serving on port (\d+)", self.log.read_bytes())
            if found:
                return int(found.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)  # the server's only signal is the line in its log
        self.stop()
        raise AssertionError(f"the server did not start:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_bytes().decode(errors="replace")[-8000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._file.close()


@pytest.fixture(scope="session")
async def fuzz_database(postgres: EmbeddedPostgres) -> str:
    return await postgres.ensure_database("forge_fuzz")


def _remove_containers(space: str) -> None:
    client = docker.from_env()
    try:
        for row in managed_containers(space):
            client.api.remove_container(str(row["Id"]), v=True, force=True)
    finally:
        client.close()


@pytest.fixture(scope="session")
def fuzzed_server(
    fuzz_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzedServer]:
    loop = _LoopThread()
    anthropic, gemini = AnthropicFake(), GeminiFake()
    space = namespace("fuzz")
    server: FuzzedServer | None = None
    try:
        data_dir = tmp_path_factory.mktemp("fuzz")
        env = {
            "FORGE_LISTEN_ADDRESS": "127.0.0.1:0",
            "FORGE_WORKERS": "1",  # one process: the fuzzer reads its log
            "FORGE_DATABASE_URL": fuzz_database,
            "FORGE_DATA_DIR": str(data_dir),
            "FORGE_JWT_SECRET": secrets.token_hex(32),
            "FORGE_LOG_FORMAT": "text",
            "FORGE_LOG_LEVEL": "WARNING",
            "FORGE_BCRYPT_ROUNDS": "4",
            "FORGE_SHUTDOWN_DRAIN_SECONDS": "0",
            "FORGE_SHUTDOWN_GRACE_SECONDS": "2",
            "FORGE_SANDBOX_NAMESPACE": space,
            "FORGE_SANDBOX_POOL_SIZE": "0",
            "FORGE_ANTHROPIC_API_KEY": "sk-ant-forge-fuzz",
            "FORGE_ANTHROPIC_BASE_URL": loop.run(anthropic.__aenter__()),
            "FORGE_GEMINI_API_KEY": "gm-forge-fuzz",
            "FORGE_GEMINI_BASE_URL": loop.run(gemini.__aenter__()),
            "FORGE_DEFAULT_MODEL": "echo",
            "FORGE_IMAGE_MODEL": "echo",
            "FORGE_ECHO_TOKEN_DELAY_MS": "0",
            "FORGE_PROVIDER_RETRY_ATTEMPTS": "1",
            "FORGE_PROVIDER_TIMEOUT_SECONDS": "5",
            # The harness registers an account per example of the RPCs that end sessions.
            "FORGE_REGISTRATIONS_PER_ADDRESS_PER_HOUR": "1000000",
        }
        server = FuzzedServer(env, data_dir / "server.log")
        yield server
    finally:
        if server is not None:
            server.stop()
        loop.run(anthropic.__aexit__(None, None, None))
        loop.run(gemini.__aexit__(None, None, None))
        loop.close()
        _remove_containers(space)


@pytest.fixture(scope="session")
def fuzz_channel(fuzzed_server: FuzzedServer) -> Iterator[grpc.Channel]:
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(f"127.0.0.1:{fuzzed_server.port}", options=options) as channel:
        yield channel


@pytest.fixture(scope="session")
def world(fuzz_channel: grpc.Channel) -> World:
    made = build_world(fuzz_channel)
    made.collect_page_tokens(
        fuzz_channel,
        [rpc for rpc in bound_rpcs() if "page_token" in rpc.method.input_type.fields_by_name],
    )
    return made
