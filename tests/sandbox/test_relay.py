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
from server.sandbox.service import exec_stream
from server.sandbox.views import ExecEvent, ExecStarted


class _FailsMidway:
    def __init__(self, failure: Exception) -> None:
        self._failure = failure

    async def events(self) -> AsyncGenerator[ExecEvent, None]:
        yield ExecStarted("e", "s", datetime.now(UTC))
        raise self._failure


async def _relayed(failure: Exception) -> tuple[list[sandbox_pb2.ExecEvent], Unavailable]:
    relayed: list[sandbox_pb2.ExecEvent] = []

    async def consume() -> None:
        async with exec_stream(cast(Execution, _FailsMidway(failure))) as events:
            async for event in events:
                relayed.append(event)

    with pytest.raises(Unavailable) as raised:
        await consume()
    return relayed, raised.value


def _reason(event: sandbox_pb2.ExecEvent) -> str:
    info = error_details_pb2.ErrorInfo()
    assert event.error.details[0].Unpack(info)
    return str(info.reason)


async def test_failure_after_start_becomes_an_error_event() -> None:
    relayed, raised = await _relayed(
        Unavailable("the engine went away", "SANDBOX_BACKEND_UNAVAILABLE")
    )
    assert [e.WhichOneof("event") for e in relayed] == ["started", "error"]
    assert [e.seq for e in relayed] == [1, 2]
    status = relayed[-1].error
    assert status.code == code_pb2.UNAVAILABLE
    assert _reason(relayed[-1]) == "SANDBOX_BACKEND_UNAVAILABLE"
    assert raised.reason == "SANDBOX_BACKEND_UNAVAILABLE"


async def test_a_bug_mid_stream_says_the_execution_was_lost() -> None:
    relayed, raised = await _relayed(RuntimeError("a bug of ours"))
    assert [e.WhichOneof("event") for e in relayed] == ["started", "error"]
    assert [e.seq for e in relayed] == [1, 2]
    assert relayed[-1].error.code == code_pb2.UNAVAILABLE
    assert _reason(relayed[-1]) == "SANDBOX_EXECUTION_LOST"
    assert raised.reason == "SANDBOX_EXECUTION_LOST"
