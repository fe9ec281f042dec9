"""Publishing a site to an S3 static website (moto's S3 server on loopback)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from server.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from server.deployments.site import FINGERPRINTED_CACHE_CONTROL
from server.deployments.targets import errors
from server.deployments.targets.base import Phase, Progress, no_progress
from server.deployments.targets.s3 import S3SiteOptions, S3SiteTarget
from tests.deployments.s3_visitor import visit
from tests.deployments.support import ProgressLog, Recorder, make_site
from tests.fakes.s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoS3Server

WEBSITE = "http://site.example"


def target(moto: MotoS3Server, bucket: str, **options: object) -> S3SiteTarget:
    return S3SiteTarget(
        S3SiteOptions(
            bucket=bucket,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            region=REGION,
            endpoint_url=moto.endpoint_url,
            website_url=WEBSITE,
            **options,  # type: ignore[arg-type]
        )
    )


def version(tag: str) -> dict[str, str | bytes]:
    return {
        "index.html": f"<h1>{tag}</h1><a href='about.html'>about</a>",
        "about.html": f"<p>about {tag}</p>",
        "assets/app-3F2A9C1B.js": f"console.log('{tag}')",
        "assets/logo.png": b"\x89PNG" + tag.encode(),
    }


async def test_a_site_is_served_with_content_types_cache_headers_and_index(
    deploy_s3: MotoS3Server, bucket: str, progress: ProgressLog
) -> None:
    published = await target(deploy_s3, bucket).publish("d1", make_site(version("v1")), progress)

    assert published.url == f"{WEBSITE}/"
    assert published.handle == {"bucket": bucket, "prefix": "", "deployment_id": "d1"}
    async with deploy_s3.client() as s3:
        home = await visit(s3, bucket, "/")
        script = await visit(s3, bucket, "/assets/app-3F2A9C1B.js")
        logo = await visit(s3, bucket, "/assets/logo.png")
        website = await s3.get_bucket_website(Bucket=bucket)
    assert (home.status, home.body) == (200, b"<h1>v1</h1><a href='about.html'>about</a>")
    assert home.content_type == "text/html; charset=utf-8"
    assert home.cache_control == "no-cache"
    assert script.content_type == "text/javascript; charset=utf-8"
    assert script.cache_control == FINGERPRINTED_CACHE_CONTROL
    assert logo.content_type == "image/png"
    assert logo.cache_control == "public, max-age=300"
    assert website["IndexDocument"] == {"Suffix": "index.html"}
    assert website["ErrorDocument"] == {"Key": "deploys/d1/index.html"}
    assert progress.phases == ["preparing", "uploading", "switching", "cleaning_up"]
    uploaded = [seen for seen in progress.seen if seen.phase is Phase.UPLOADING][-1]
    assert (uploaded.files_done, uploaded.files_total) == (4, 4)
    assert uploaded.bytes_done == uploaded.bytes_total > 0


async def test_missing_pages_get_the_sites_own_error_page(
    deploy_s3: MotoS3Server, bucket: str
) -> None:
    site = make_site({"index.html": "home", "404.html": "nothing here"})
    await target(deploy_s3, bucket).publish("d1", site, no_progress)

    async with deploy_s3.client() as s3:
        missing = await visit(s3, bucket, "/no/such/page.html")
    assert missing.body == b"nothing here"


async def test_a_second_deployment_switches_in_one_request(
    deploy_s3: MotoS3Server, bucket: str, recorder: Recorder
) -> None:
    s3_target = target(deploy_s3, bucket)
    await s3_target.publish("d1", make_site(version("v1")), no_progress)
    paths = ["/", "/about.html", "/assets/app-3F2A9C1B.js"]
    seen_before: list[bytes] = []

    async def around_switch(progress: Progress) -> None:
        if progress.phase is Phase.CLEANING_UP:
            requests.extend(await recorder.stop())
        if progress.phase is Phase.SWITCHING:
            async with deploy_s3.client() as s3:
                seen_before.extend([(await visit(s3, bucket, path)).body for path in paths])
                listed = await s3.list_objects_v2(Bucket=bucket, Prefix="deploys/d2/")
            assert len(listed["Contents"]) == 4  # the new deployment is all there already
            await recorder.start()

    requests: list[tuple[str, str]] = []
    await s3_target.publish("d2", make_site(version("v2")), around_switch)

    assert seen_before == [
        b"<h1>v1</h1><a href='about.html'>about</a>",
        b"<p>about v1</p>",
        b"console.log('v1')",
    ]
    assert [(method, url.split("?", 1)[1]) for method, url in requests] == [("PUT", "website")]
    async with deploy_s3.client() as s3:
        after = [(await visit(s3, bucket, path)).body for path in paths]
        old_permalink = await visit(s3, bucket, "/deploys/d1/about.html")
    assert after == [
        b"<h1>v2</h1><a href='about.html'>about</a>",
        b"<p>about v2</p>",
        b"console.log('v2')",
    ]
    assert old_permalink.body == b"<p>about v1</p>"  # a visitor mid-way keeps a whole site


async def test_sites_under_prefixes_share_a_bucket(deploy_s3: MotoS3Server, bucket: str) -> None:
    blog, shop = target(deploy_s3, bucket, prefix="blog"), target(deploy_s3, bucket, prefix="shop/")
    published = await blog.publish("b1", make_site({"index.html": "blog"}), no_progress)
    shop_live = await shop.publish("s1", make_site({"index.html": "shop"}), no_progress)
    await blog.publish("b2", make_site({"index.html": "blog 2"}), no_progress)

    assert published.url == f"{WEBSITE}/blog/"
    async with deploy_s3.client() as s3:
        assert (await visit(s3, bucket, "/blog/")).body == b"blog 2"
        assert (await visit(s3, bucket, "/shop/")).body == b"shop"
        await shop.remove(shop_live.handle)
        assert (await visit(s3, bucket, "/shop/")).status == 404
        assert (await visit(s3, bucket, "/blog/")).body == b"blog 2"


async def test_older_deployments_beyond_keep_previous_are_deleted(
    deploy_s3: MotoS3Server, bucket: str, progress: ProgressLog
) -> None:
    s3_target = target(deploy_s3, bucket, keep_previous=1)
    for name in ("d1", "d2"):
        await s3_target.publish(name, make_site(version(name)), no_progress)
    await s3_target.publish("d3", make_site(version("d3")), progress)

    async with deploy_s3.client() as s3:
        listed = await s3.list_objects_v2(Bucket=bucket)
    deployments = {item["Key"].split("/")[1] for item in listed["Contents"]}
    assert deployments == {"d2", "d3", ".history.json"}
    assert progress.phases[-1] == "cleaning_up"


async def test_remove_deletes_the_deployment_and_the_switch_to_it(
    deploy_s3: MotoS3Server, bucket: str
) -> None:
    s3_target = target(deploy_s3, bucket)
    first = await s3_target.publish("d1", make_site(version("v1")), no_progress)
    second = await s3_target.publish("d2", make_site(version("v2")), no_progress)

    await s3_target.remove(first.handle)
    async with deploy_s3.client() as s3:
        assert (await visit(s3, bucket, "/")).body.startswith(b"<h1>v2")
        await s3_target.remove(second.handle)
        await s3_target.remove(second.handle)  # twice is fine
        listed = await s3.list_objects_v2(Bucket=bucket)
        home = await visit(s3, bucket, "/")
    assert [item["Key"] for item in listed["Contents"]] == ["deploys/.history.json"]
    assert home.status == 404


async def test_a_missing_bucket_is_a_clear_failed_precondition(
    deploy_s3: MotoS3Server,
) -> None:
    with pytest.raises(FailedPrecondition) as raised:
        await target(deploy_s3, "no-such-bucket").publish(
            "d1", make_site({"index.html": "x"}), no_progress
        )
    assert raised.value.reason == errors.NOT_FOUND
    assert SECRET_ACCESS_KEY not in raised.value.message


async def test_an_unreachable_endpoint_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = S3SiteTarget(
        S3SiteOptions(
            bucket="b",
            access_key_id="key",
            secret_access_key="very-secret",
            endpoint_url=f"http://127.0.0.1:{port}",
            attempts=1,
        )
    )
    with pytest.raises(Unavailable) as raised:
        await closed.publish("d1", make_site({"index.html": "x"}), no_progress)
    assert raised.value.reason == errors.UNAVAILABLE
    assert "very-secret" not in str(raised.value)


async def test_a_cancelled_publish_leaves_nothing_behind(
    deploy_s3: MotoS3Server, bucket: str
) -> None:
    halfway = asyncio.Event()

    async def stall_halfway(progress: Progress) -> None:
        if progress.phase is Phase.UPLOADING and progress.files_done == 2:
            halfway.set()
            await asyncio.Event().wait()  # until cancelled

    site = make_site(version("v1"))
    publishing = asyncio.create_task(
        target(deploy_s3, bucket, concurrency=1).publish("d1", site, stall_halfway)
    )
    await asyncio.wait_for(halfway.wait(), 10)
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing

    async with deploy_s3.client() as s3:
        listed = await s3.list_objects_v2(Bucket=bucket)
        home = await visit(s3, bucket, "/")
    assert listed.get("Contents", []) == []
    assert home.status == 404


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidArgument) as raised:
        S3SiteTarget(
            S3SiteOptions(bucket="", access_key_id="", secret_access_key="", keep_previous=-1)
        )
    assert [v.field for v in raised.value.violations] == [
        "bucket",
        "access_key_id",
        "secret_access_key",
        "keep_previous",
    ]
