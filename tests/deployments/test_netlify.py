"""Publishing a site to Netlify (a loopback fake speaking the file-digest deploy API)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from server.core.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from server.deployments.targets import errors
from server.deployments.targets.base import Phase, no_progress
from server.deployments.targets.http import HttpOptions
from server.deployments.targets.netlify import NetlifyTarget
from tests.deployments.support import ProgressLog, make_site
from tests.fakes.netlify_fake import NetlifyFake

FAST = HttpOptions(poll_interval=0.01, ready_timeout=10, base_retry_delay=0.01)
FILES: dict[str, str | bytes] = {
    "index.html": "<script src='app.js'></script>",
    "app.js": "document.body.textContent = 'hello'",
    "style.css": "body { color: red }",
    "docs/read me.html": "<p>a path with a space</p>",
}


@pytest.fixture
async def netlify() -> AsyncIterator[NetlifyFake]:
    async with NetlifyFake() as fake:
        yield fake


def target(fake: NetlifyFake, token: str | None = None) -> NetlifyTarget:
    return NetlifyTarget(fake.site_id, token or fake.token, api_url=fake.url, options=FAST)


async def test_a_site_is_uploaded_and_goes_live(
    netlify: NetlifyFake, progress: ProgressLog
) -> None:
    published = await target(netlify).publish("d1", make_site(FILES), progress)

    assert published.url == netlify.site_url
    assert published.handle["deploy_id"] in netlify.deploys
    assert netlify.site_files() == {path: str(body).encode() for path, body in FILES.items()}
    assert sorted(upload.path for upload in netlify.uploads) == sorted(FILES)
    assert {upload.content_type for upload in netlify.uploads} == {"application/octet-stream"}
    assert progress.phases == ["preparing", "uploading", "processing"]
    uploaded = [seen for seen in progress.seen if seen.phase is Phase.UPLOADING][-1]
    assert (uploaded.files_done, uploaded.files_total) == (4, 4)


async def test_a_second_deploy_sends_only_what_changed(netlify: NetlifyFake) -> None:
    netlify_target = target(netlify)
    await netlify_target.publish("d1", make_site(FILES), no_progress)
    netlify.uploads.clear()

    changed = {**FILES, "app.js": "document.body.textContent = 'hello again'"}
    await netlify_target.publish("d2", make_site(changed), no_progress)

    assert [(upload.path, upload.data) for upload in netlify.uploads] == [
        ("app.js", b"document.body.textContent = 'hello again'")
    ]
    assert netlify.site_files()["app.js"] == b"document.body.textContent = 'hello again'"
    assert netlify.site_files()["index.html"] == b"<script src='app.js'></script>"


async def test_identical_files_are_sent_once(netlify: NetlifyFake) -> None:
    site = make_site({"index.html": "same", "copy/index.html": "same"})
    await target(netlify).publish("d1", site, no_progress)

    assert len(netlify.uploads) == 1
    assert netlify.site_files() == {"index.html": b"same", "copy/index.html": b"same"}


async def test_a_bad_token_is_refused_without_showing_it(
    netlify: NetlifyFake, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "nfp_this-token-is-wrong"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FailedPrecondition) as raised:
        await target(netlify, token=bad).publish("d1", make_site(FILES), no_progress)

    assert raised.value.reason == errors.REFUSED
    assert "Netlify" in raised.value.message
    assert bad not in str(raised.value)
    assert bad not in repr(raised.value.metadata)
    assert netlify.deploys == {}
    assert bad not in caplog.text


async def test_an_unknown_site_is_not_found(netlify: NetlifyFake) -> None:
    other = NetlifyTarget("no-such-site", netlify.token, api_url=netlify.url, options=FAST)
    with pytest.raises(FailedPrecondition) as raised:
        await other.publish("d1", make_site(FILES), no_progress)
    assert raised.value.reason == errors.NOT_FOUND


async def test_rate_limits_are_waited_out(netlify: NetlifyFake) -> None:
    netlify.throttle(2, retry_after=0)
    published = await target(netlify).publish("d1", make_site(FILES), no_progress)
    assert published.url == netlify.site_url


async def test_a_rate_limit_that_lasts_is_resource_exhausted(netlify: NetlifyFake) -> None:
    netlify.throttle(100, retry_after=3600)
    with pytest.raises(ResourceExhausted) as raised:
        await target(netlify).publish("d1", make_site(FILES), no_progress)
    assert raised.value.reason == errors.RATE_LIMITED
    assert raised.value.retry_after is not None
    assert raised.value.retry_after.total_seconds() == 3600


async def test_remove_deletes_the_deploy_and_twice_is_fine(netlify: NetlifyFake) -> None:
    netlify_target = target(netlify)
    published = await netlify_target.publish("d1", make_site(FILES), no_progress)

    await netlify_target.remove(published.handle)
    await netlify_target.remove(published.handle)

    assert netlify.deploys == {}
    assert netlify.site_files() == {}


async def test_a_deploy_netlify_fails_is_failed_and_discarded(netlify: NetlifyFake) -> None:
    netlify.fail_processing = True
    with pytest.raises(FailedPrecondition) as raised:
        await target(netlify).publish("d1", make_site(FILES), no_progress)

    assert raised.value.reason == errors.FAILED
    assert netlify.deploys == {}


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidArgument) as raised:
        NetlifyTarget(" ", "")
    assert [v.field for v in raised.value.violations] == ["site_id", "token"]
