"""Publishing a site to Vercel (a loopback fake speaking the deployments API)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.core.errors import FailedPrecondition, InvalidArgument
from server.deployments.targets import errors
from server.deployments.targets.base import Phase, no_progress
from server.deployments.targets.http import HttpOptions
from server.deployments.targets.vercel import VercelTarget
from tests.deployments.support import ProgressLog, make_site
from tests.fakes.vercel_fake import VercelFake

FAST = HttpOptions(poll_interval=0.01, ready_timeout=10, base_retry_delay=0.01)
FILES: dict[str, str | bytes] = {
    "index.html": "<script src='assets/app.js'></script>",
    "assets/app.js": "document.body.textContent = 'hello'",
    "assets/logo.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
}


@pytest.fixture
async def vercel() -> AsyncIterator[VercelFake]:
    async with VercelFake() as fake:
        yield fake


def target(fake: VercelFake, token: str | None = None, team_id: str | None = None) -> VercelTarget:
    return VercelTarget(
        "forge-app", token or fake.token, team_id=team_id, api_url=fake.url, options=FAST
    )


async def test_a_site_is_uploaded_and_goes_live(vercel: VercelFake, progress: ProgressLog) -> None:
    published = await target(vercel).publish("d1", make_site(FILES), progress)

    deployment_id = published.handle["deployment_id"]
    assert published.url == f"https://{vercel.deployments[deployment_id].url}"
    assert vercel.site_files("forge-app") == {path: str(b).encode() for path, b in FILES.items()}
    assert sorted(upload.data for upload in vercel.uploads) == sorted(
        str(body).encode() for body in FILES.values()
    )
    assert {upload.content_type for upload in vercel.uploads} == {"application/octet-stream"}
    body = vercel.create_bodies[-1]
    assert body["name"] == "forge-app"
    assert body["target"] == "production"
    assert body["projectSettings"] == {"framework": None}
    assert progress.phases == ["preparing", "uploading", "processing"]
    uploaded = [seen for seen in progress.seen if seen.phase is Phase.UPLOADING][-1]
    assert (uploaded.files_done, uploaded.files_total) == (3, 3)


async def test_a_second_deploy_sends_only_what_changed(vercel: VercelFake) -> None:
    vercel_target = target(vercel)
    await vercel_target.publish("d1", make_site(FILES), no_progress)
    vercel.uploads.clear()

    changed = {**FILES, "assets/app.js": "document.body.textContent = 'hello again'"}
    published = await vercel_target.publish("d2", make_site(changed), no_progress)

    assert [upload.data for upload in vercel.uploads] == [
        b"document.body.textContent = 'hello again'"
    ]
    assert vercel.production["forge-app"] == published.handle["deployment_id"]
    assert vercel.site_files("forge-app")["assets/app.js"] == (
        b"document.body.textContent = 'hello again'"
    )


async def test_the_team_is_passed_on_every_call(vercel: VercelFake) -> None:
    await target(vercel, team_id="team_forge").publish("d1", make_site(FILES), no_progress)
    assert set(vercel.team_ids) == {"team_forge"}


async def test_a_bad_token_is_refused_without_showing_it(vercel: VercelFake) -> None:
    bad = "vercel_this-token-is-wrong"
    with pytest.raises(FailedPrecondition) as raised:
        await target(vercel, token=bad).publish("d1", make_site(FILES), no_progress)

    assert raised.value.reason == errors.REFUSED
    assert "Vercel" in raised.value.message
    assert bad not in str(raised.value)
    assert bad not in repr(raised.value.metadata)
    assert vercel.deployments == {}


async def test_rate_limits_are_waited_out(vercel: VercelFake) -> None:
    vercel.throttle(2, retry_after=0)
    published = await target(vercel).publish("d1", make_site(FILES), no_progress)
    assert published.url.startswith("https://forge-app-")


async def test_remove_deletes_the_deployment_and_twice_is_fine(vercel: VercelFake) -> None:
    vercel_target = target(vercel)
    published = await vercel_target.publish("d1", make_site(FILES), no_progress)

    await vercel_target.remove(published.handle)
    await vercel_target.remove(published.handle)

    assert vercel.deployments == {}
    assert vercel.site_files("forge-app") == {}


async def test_a_deployment_vercel_fails_is_failed_and_discarded(vercel: VercelFake) -> None:
    vercel.fail_builds = True
    with pytest.raises(FailedPrecondition) as raised:
        await target(vercel).publish("d1", make_site(FILES), no_progress)
    assert raised.value.reason == errors.FAILED
    assert "ERROR" in raised.value.message
    assert vercel.deployments == {}


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidArgument) as raised:
        VercelTarget("My App!", "")
    assert [v.field for v in raised.value.violations] == ["project", "token"]
