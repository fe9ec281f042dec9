"""A user's active runs stay within their share (runs_per_user, 3 on this server) until an
admin raises it for them."""

from __future__ import annotations

import grpc
import pytest
from forge.agents.v1 import agents_pb2
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf import field_mask_pb2

from tests.agents.support import Team, quota_failure
from tests.runs.conftest import agents, start_run, wait_for_status
from tests.support.accounts import Account
from tests.support.rpc import error_info

GOAL = "Greet.\n\n```python\n# file: hi.py\nprint('hi there')\n```\n"


async def test_an_admin_override_lifts_the_run_share(
    runs_channel: grpc.aio.Channel, runs_admin: Account, crew: Team
) -> None:
    async def start() -> agents_pb2.Run:
        # Runs that wait for approval stay active without using anything.
        return await start_run(
            runs_channel,
            crew.owner,
            crew.project_id,
            GOAL,
            approval_mode=agents_pb2.APPROVAL_MODE_ASK_BEFORE_WRITES,
        )

    started = [await start() for _ in range(3)]
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await start()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info(refused.value)
        assert (info.reason, info.metadata["quota"]) == ("RUN_LIMIT_REACHED", "max_active_runs")
        failure = quota_failure(refused.value)
        assert failure is not None
        assert failure.violations[0].description.startswith("max_active_runs: 3 of 3")

        await auth_pb2_grpc.AuthServiceStub(runs_channel).UpdateUserLimits(
            auth_pb2.UpdateUserLimitsRequest(
                limits=auth_pb2.UserLimits(user_id=crew.owner.user_id, max_active_runs=4),
                update_mask=field_mask_pb2.FieldMask(paths=["max_active_runs"]),
            ),
            metadata=runs_admin.metadata,
            timeout=10,
        )
        started.append(await start())
    finally:
        for run in started:
            await wait_for_status(
                runs_channel, crew.owner, run.id, agents_pb2.RUN_STATUS_WAITING_FOR_APPROVAL
            )
            await agents(runs_channel).CancelRun(
                agents_pb2.CancelRunRequest(run_id=run.id), metadata=crew.owner.metadata, timeout=10
            )
