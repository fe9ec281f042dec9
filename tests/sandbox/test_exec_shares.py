"""The per-user and per-project shares of a server's execution slots (exec_shares.py)."""

from __future__ import annotations

import uuid

import pytest

from server.config import Settings
from server.core.errors import ResourceExhausted
from server.core.limits import DefaultLimits
from server.sandbox.exec_shares import ExecShares


def shares(per_user: int, per_project: int) -> ExecShares:
    return ExecShares(DefaultLimits(Settings(user_max_concurrent_execs=per_user)), per_project)


async def test_a_user_past_their_share_is_refused_and_others_still_run() -> None:
    gate = shares(per_user=2, per_project=10)
    alice, bob, project = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    held = [await gate.take(alice, project), await gate.take(alice, project)]
    with pytest.raises(ResourceExhausted) as refused:
        await gate.take(alice, uuid.uuid4())
    assert refused.value.reason == "USER_EXEC_LIMIT_REACHED"
    assert refused.value.metadata["quota"] == "max_concurrent_execs"
    [violation] = refused.value.quota_violations
    assert violation.subject == f"user:{alice}"
    assert violation.description.startswith("max_concurrent_execs: 2 of 2")
    await gate.take(bob, project)  # Bob still runs

    held[0].release()
    held[0].release()  # a second release changes nothing
    assert gate.running(alice) == 1
    await gate.take(alice, project)
    assert gate.running(alice) == 2


async def test_a_project_past_its_share_is_refused() -> None:
    gate = shares(per_user=10, per_project=2)
    project, other = uuid.uuid4(), uuid.uuid4()
    first = await gate.take(uuid.uuid4(), project)
    await gate.take(uuid.uuid4(), project)
    with pytest.raises(ResourceExhausted) as refused:
        await gate.take(uuid.uuid4(), project)
    assert refused.value.reason == "PROJECT_EXEC_LIMIT_REACHED"
    assert refused.value.quota_violations[0].subject == f"projects/{project}"
    await gate.take(uuid.uuid4(), other)
    first.release()
    await gate.take(uuid.uuid4(), project)
