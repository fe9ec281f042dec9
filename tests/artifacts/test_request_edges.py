"""Durations beyond what Python's timedelta holds (found by tests/fuzz: they were INTERNAL)."""

from __future__ import annotations

import uuid

import grpc
import pytest
from forge.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from google.protobuf import duration_pb2

from tests.support.accounts import Account
from tests.support.rpc import field_violations


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(2**63 - 1, 0), (-(2**63), 0), (-86_399_999_913_600, -1)]
)
async def test_an_absurd_download_url_ttl_is_invalid(
    channel: grpc.aio.Channel, user: Account, seconds: int, nanos: int
) -> None:
    stub = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetDownloadUrl(
            artifacts_pb2.GetDownloadUrlRequest(
                artifact_id=str(uuid.uuid4()),
                ttl=duration_pb2.Duration(seconds=seconds, nanos=nanos),
            ),
            metadata=user.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ttl" in field_violations(refused.value)
