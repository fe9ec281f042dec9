"""An S3 static website (AWS S3, or any S3 API with website hosting).

A publish uploads every file under the deployment's own prefix, `<prefix>deploys/<id>/…`,
with its Content-Type and a Cache-Control (HTML revalidated on every visit, fingerprinted
assets cached for a year, other assets for minutes), then makes it live with one
PutBucketWebsite request (how and why: s3_website.py), then notes it in the site's history
(`<prefix>deploys/.history.json`, the ids of the deployments that went live, oldest first)
and, if `keep_previous` is set, deletes the objects of the deployments of that history
beyond that many before the live one. Only deployments that went live are ever pruned, so
a publish still uploading at the same moment is left alone; a publish that fails before the
switch deletes what it uploaded itself. `remove` deletes a deployment's objects (and its
history entry), and the website rules first when they served it.

Credentials are always the target's own: a target never falls back to the server's AWS
credentials (environment, instance role), which would let a user deploy into buckets of
the server. The bucket policy that lets the public read the site is the bucket owner's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from server.core.errors import FieldViolation, ForgeError, InvalidArgument, Violations
from server.deployments.site import Site, SiteFile, cache_control_for
from server.deployments.targets import errors, s3_website
from server.deployments.targets.base import (
    Handle,
    Phase,
    Progress,
    ProgressCallback,
    Published,
    UploadCounter,
    run_bounded,
)

log = logging.getLogger(__name__)

NAME = "S3"
DELETE_BATCH = 1000  # DeleteObjects' limit
HISTORY = ".history.json"
DEPLOYMENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MAX_HISTORY = 1000
REFUSING_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AllAccessDisabled",
        "AccountProblem",
    }
)
TRANSIENT_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
)
NO_WEBSITE_CODES = frozenset({"NoSuchWebsiteConfiguration"})
# Regions whose website endpoint is `s3-website-<region>`; the others use `s3-website.<region>`.
DASHED_WEBSITE_REGIONS = frozenset(
    {
        "us-east-1",
        "us-west-1",
        "us-west-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "eu-west-1",
        "sa-east-1",
        "us-gov-west-1",
    }
)


@dataclass(frozen=True)
class S3SiteOptions:
    bucket: str
    access_key_id: str
    secret_access_key: str
    prefix: str = ""
    """A folder of the bucket the site lives in ("" : the whole bucket)."""
    region: str = "us-east-1"
    endpoint_url: str | None = None
    """None: AWS. Otherwise any S3 API that hosts static websites."""
    website_url: str | None = None
    """The website endpoint (or a domain in front of it); derived for AWS when unset."""
    session_token: str | None = None
    keep_previous: int | None = None
    """Older deployments whose objects survive a publish (None: all of them)."""
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    attempts: int = 4
    """Tries per request (botocore's standard retries: throttling and 5xx, with backoff)."""
    concurrency: int = 8

    @property
    def key_prefix(self) -> str:
        prefix = self.prefix.strip("/")
        return f"{prefix}/" if prefix else ""

    @property
    def site_url(self) -> str:
        if self.website_url:
            root = self.website_url.rstrip("/")
        elif self.endpoint_url:
            root = f"{self.endpoint_url.rstrip('/')}/{self.bucket}"
        else:
            separator = "-" if self.region in DASHED_WEBSITE_REGIONS else "."
            root = f"http://{self.bucket}.s3-website{separator}{self.region}.amazonaws.com"
        return f"{root}/{self.key_prefix}"


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """S3 and transport failures as the errors of errors.py (codes only, no S3 messages)."""
    try:
        yield
    except ClientError as error:
        raise _client_error(error) from None
    except (BotoCoreError, aiohttp.ClientError, TimeoutError, OSError):
        raise errors.unavailable(NAME, "no answer from the endpoint") from None


def _client_error(error: ClientError) -> ForgeError:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in REFUSING_CODES or status in (401, 403):
        return errors.refused(NAME, code or f"HTTP {status}")
    if code == "NoSuchBucket":
        return errors.not_found(NAME, "the bucket")
    if code in TRANSIENT_CODES or status >= 500:
        return errors.unavailable(NAME, code or f"HTTP {status}")
    if code == "NotImplemented":
        return errors.rejected(NAME, "the endpoint does not host static websites")
    return errors.rejected(NAME, code or f"HTTP {status}")


def _check_deployment_id(deployment_id: str) -> None:
    if not DEPLOYMENT_ID.match(deployment_id) or deployment_id in (".", ".."):
        raise InvalidArgument.of(
            [FieldViolation("deployment_id", "must be letters, digits, '.', '_' or '-'")]
        )


class S3SiteTarget:
    kind = "s3"

    def __init__(self, options: S3SiteOptions) -> None:
        violations = Violations()
        violations.check(bool(options.bucket.strip()), "bucket", "is required")
        violations.check(bool(options.access_key_id), "access_key_id", "is required")
        violations.check(bool(options.secret_access_key), "secret_access_key", "is required")
        violations.check(
            options.keep_previous is None or options.keep_previous >= 0,
            "keep_previous",
            "must not be negative",
        )
        violations.raise_if_any()
        self.options = options
        self._prefix = options.key_prefix

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        options = self.options
        session = aioboto3.Session(
            aws_access_key_id=options.access_key_id,
            aws_secret_access_key=options.secret_access_key,
            aws_session_token=options.session_token,
            region_name=options.region,
        )
        config = AioConfig(
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            retries={"max_attempts": options.attempts, "mode": "standard"},
            s3={"addressing_style": options.addressing_style},
            max_pool_connections=max(10, options.concurrency),
        )
        with _mapped():
            async with session.client(
                "s3", endpoint_url=options.endpoint_url, config=config
            ) as client:
                yield client

    async def publish(
        self, deployment_id: str, site: Site, progress: ProgressCallback
    ) -> Published:
        _check_deployment_id(deployment_id)
        await progress(Progress(Phase.PREPARING))
        bucket = self.options.bucket
        deployment = s3_website.deployment_prefix(self._prefix, deployment_id)
        async with self._client() as client:
            try:
                await self._upload(client, deployment, site, progress)
                await progress(Progress(Phase.SWITCHING))
                await self._switch(client, deployment_id, site)
            except BaseException:
                # A switch whose answer was lost may have happened: a live deployment stays.
                if not await self._is_live(client, deployment_id):
                    with contextlib.suppress(ForgeError):
                        await self._delete_prefix(client, deployment)
                raise
            log.info("S3 site %s/%s now serves deployment %s", bucket, self._prefix, deployment_id)
            await progress(Progress(Phase.CLEANING_UP))
            await self._went_live(client, deployment_id)
        return Published(
            url=self.options.site_url,
            handle={"bucket": bucket, "prefix": self._prefix, "deployment_id": deployment_id},
        )

    async def _switch(self, client: Any, deployment_id: str, site: Site) -> None:
        """The one request that makes `deployment_id` live (two with a prefix: see
        s3_website.py)."""
        with _mapped():
            existing = await self._website(client) if self._prefix else {}
            configuration = s3_website.switched(
                existing,
                self._prefix,
                deployment_id,
                s3_website.fallback_page(frozenset(site.files)),
            )
            await client.put_bucket_website(
                Bucket=self.options.bucket, WebsiteConfiguration=configuration
            )

    async def _is_live(self, client: Any, deployment_id: str) -> bool:
        try:
            with _mapped():
                existing = await self._website(client)
        except ForgeError:
            return False
        return s3_website.live_deployment(existing, self._prefix) == deployment_id

    async def _upload(
        self, client: Any, deployment: str, site: Site, progress: ProgressCallback
    ) -> None:
        counter = UploadCounter(progress, len(site), site.total_bytes)
        await counter.start()

        def upload(file: SiteFile) -> Callable[[], Awaitable[None]]:
            async def put() -> None:
                with _mapped():
                    await client.put_object(
                        Bucket=self.options.bucket,
                        Key=deployment + file.path,
                        Body=file.data,
                        ContentType=file.content_type,
                        CacheControl=cache_control_for(file.path, file.content_type),
                    )
                await counter.uploaded(file.size)

            return put

        await run_bounded([upload(file) for file in site], self.options.concurrency)

    async def _website(self, client: Any) -> dict[str, Any]:
        try:
            answer = await client.get_bucket_website(Bucket=self.options.bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in NO_WEBSITE_CODES:
                return {}
            raise
        return {
            key: answer[key]
            for key in ("IndexDocument", "ErrorDocument", "RoutingRules", "RedirectAllRequestsTo")
            if key in answer
        }

    async def _keys(self, client: Any, prefix: str) -> AsyncIterator[str]:
        paginator = client.get_paginator("list_objects_v2")
        with _mapped():
            async for page in paginator.paginate(Bucket=self.options.bucket, Prefix=prefix):
                for item in page.get("Contents") or []:
                    yield str(item["Key"])

    async def _delete_keys(self, client: Any, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            with _mapped():
                await client.delete_objects(
                    Bucket=self.options.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )

    async def _delete_prefix(self, client: Any, prefix: str) -> None:
        await self._delete_keys(client, [key async for key in self._keys(client, prefix)])

    def _history_key(self, prefix: str) -> str:
        return s3_website.deployments_prefix(prefix) + HISTORY

    async def _history(self, client: Any, prefix: str) -> list[str]:
        with _mapped():
            try:
                answer = await client.get_object(
                    Bucket=self.options.bucket, Key=self._history_key(prefix)
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return []
                raise
            raw = await answer["Body"].read()
        try:
            ids = json.loads(raw)
        except ValueError:
            return []
        return [str(item) for item in ids] if isinstance(ids, list) else []

    async def _save_history(self, client: Any, prefix: str, ids: list[str]) -> None:
        with _mapped():
            await client.put_object(
                Bucket=self.options.bucket,
                Key=self._history_key(prefix),
                Body=json.dumps(ids[-MAX_HISTORY:]).encode(),
                ContentType="application/json",
                CacheControl="no-store",
            )

    async def _went_live(self, client: Any, live_id: str) -> None:
        """Notes `live_id` in the history; prunes deployments beyond `keep_previous`."""
        history = [name for name in await self._history(client, self._prefix) if name != live_id]
        history.append(live_id)
        keep = self.options.keep_previous
        pruned = history[: -(keep + 1)] if keep is not None else []
        await self._save_history(client, self._prefix, history[len(pruned) :])
        for name in pruned:
            await self._delete_prefix(client, s3_website.deployment_prefix(self._prefix, name))
        if pruned:
            log.info(
                "S3 site %s/%s: removed %d older deployments",
                self.options.bucket,
                self._prefix,
                len(pruned),
            )

    async def remove(self, handle: Handle) -> None:
        deployment_id = str(handle["deployment_id"])
        prefix = str(handle.get("prefix", self._prefix))
        async with self._client() as client:
            with _mapped():
                existing = await self._website(client)
                if existing and s3_website.live_deployment(existing, prefix) == deployment_id:
                    await client.put_bucket_website(
                        Bucket=self.options.bucket,
                        WebsiteConfiguration=s3_website.unswitched(existing, prefix),
                    )
            await self._delete_prefix(client, s3_website.deployment_prefix(prefix, deployment_id))
            history = await self._history(client, prefix)
            if deployment_id in history:
                history.remove(deployment_id)
                await self._save_history(client, prefix, history)
        log.info("S3 site %s/%s: removed deployment %s", self.options.bucket, prefix, deployment_id)
