"""An execution that fails after it started still ends its stream in-band: an `error` event
carrying the same status the call then fails with."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import cast

import pytest
from forge.sandbox.v1 import sandbox_pb2
from google.rpc import code_pb2, error_details_pb2

from server.core.errors import Unavailable
from server.sandbox.executions import Execution
from server.sandbox.service import _relay
from server.sandbox.views import ExecEvent, ExecStarted


class _FailsMidway:
    async def events(self) -> AsyncGenerator[ExecEvent, None]:
        yield ExecStarted("e", "s", datetime.now(UTC))
        raise Unavailable("the engine went away", "SANDBOX_BACKEND_UNAVAILABLE")


async def test_failure_after_start_becomes_an_error_event() -> None:
    relayed: list[sandbox_pb2.ExecEvent] = []

    async def consume() -> None:
        async for event in _relay(cast(Execution, _FailsMidway())):
            relayed.append(event)

    with pytest.raises(Unavailable):
        await consume()
    assert [e.WhichOneof("event") for e in relayed] == ["started", "error"]
    assert [e.seq for e in relayed] == [1, 2]
    status = relayed[-1].error
    assert status.code == code_pb2.UNAVAILABLE
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "SANDBOX_BACKEND_UNAVAILABLE"
