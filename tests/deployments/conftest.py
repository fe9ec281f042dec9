"""Fixtures of the deploy-target tests: moto's S3 server (with its request recorder writing
to a temporary file), a fresh bucket per test, a progress log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.deployments.support import ProgressLog, Recorder
from tests.fakes.s3 import MotoS3Server


@pytest.fixture(scope="session")
async def deploy_s3(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MotoS3Server]:
    recording = tmp_path_factory.mktemp("moto") / "recording.jsonl"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MOTO_RECORDER_FILEPATH", str(recording))  # the child inherits it
        server = MotoS3Server()
        await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def bucket(deploy_s3: MotoS3Server) -> str:
    return await deploy_s3.create_bucket()


@pytest.fixture
def recorder(deploy_s3: MotoS3Server) -> Recorder:
    return Recorder(deploy_s3)


@pytest.fixture
def progress() -> ProgressLog:
    return ProgressLog()
