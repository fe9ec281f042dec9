"""GetUserLimits and UpdateUserLimits over REST, through Envoy."""

from __future__ import annotations

import aiohttp

from tests.support.accounts import Account


def _bearer(account: Account) -> dict[str, str]:
    return {"authorization": f"Bearer {account.access_token}"}


async def test_limits_over_rest(http: aiohttp.ClientSession, admin: Account, user: Account) -> None:
    async with http.get("/v1/users/me/limits", headers=_bearer(user)) as response:
        assert response.status == 200
        mine = await response.json()
    assert mine["userId"] == user.user_id
    assert mine["maxSandboxes"] > 0
    assert "overriddenFields" not in mine

    path = f"/v1/users/{user.user_id}/limits?updateMask=maxSandboxes"
    async with http.patch(path, json={"maxSandboxes": 7}, headers=_bearer(user)) as refused:
        assert refused.status == 403
    async with http.patch(path, json={"maxSandboxes": 7}, headers=_bearer(admin)) as response:
        assert response.status == 200
        changed = await response.json()
    assert changed["maxSandboxes"] == 7
    assert changed["overriddenFields"] == ["max_sandboxes"]
