"""A visitor of an S3 static website, for tests against moto (which stores a bucket's website
configuration but has no website endpoint): it resolves a path as the website endpoint does,
by AWS's documented rules, reading the configuration and the objects through the S3 API.

- `/dir/` gets the index document (`dir/index.html`);
- an existing object is served; a missing one is an error (404) that the routing rules
  handle in order, the first rule whose conditions (`KeyPrefixEquals`,
  `HttpErrorCodeReturnedEquals`) all match redirecting (`ReplaceKeyWith` or
  `ReplaceKeyPrefixWith` the matched prefix); redirects are followed;
- with no rule matching, the error document is served with status 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

MAX_REDIRECTS = 10


@dataclass(frozen=True)
class Visit:
    status: int
    key: str
    """The object served ("" when none)."""
    body: bytes
    content_type: str
    cache_control: str
    redirects: tuple[str, ...]


async def _website(client: Any, bucket: str) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = await client.get_bucket_website(Bucket=bucket)
    except ClientError as error:
        if error.response["Error"]["Code"] == "NoSuchWebsiteConfiguration":
            return {}
        raise
    return answer


async def _object(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        answer: dict[str, Any] = await client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    return answer


async def visit(client: Any, bucket: str, path: str) -> Visit:
    """What a browser gets for `path` on the bucket's website endpoint."""
    website = await _website(client, bucket)
    if not website:
        return Visit(404, "", b"", "", "", ())
    suffix = website.get("IndexDocument", {}).get("Suffix", "index.html")
    redirects: list[str] = []
    key = path.lstrip("/")
    for _ in range(MAX_REDIRECTS):
        lookup = key + suffix if key == "" or key.endswith("/") else key
        found = await _object(client, bucket, lookup)
        if found is not None:
            return Visit(
                200,
                lookup,
                await found["Body"].read(),
                found.get("ContentType", ""),
                found.get("CacheControl", ""),
                tuple(redirects),
            )
        target = _redirect(website.get("RoutingRules") or [], key, "404")
        if target is None:
            break
        redirects.append("/" + target)
        key = target
    else:
        raise AssertionError(f"redirect loop: {redirects}")
    error_key = website.get("ErrorDocument", {}).get("Key")
    error_page = await _object(client, bucket, error_key) if error_key else None
    if error_page is None:
        return Visit(404, "", b"", "", "", tuple(redirects))
    return Visit(
        404,
        error_key,
        await error_page["Body"].read(),
        error_page.get("ContentType", ""),
        error_page.get("CacheControl", ""),
        tuple(redirects),
    )


def _redirect(rules: list[dict[str, Any]], key: str, error_code: str) -> str | None:
    for rule in rules:
        condition = rule.get("Condition") or {}
        prefix = condition.get("KeyPrefixEquals", "")
        code = condition.get("HttpErrorCodeReturnedEquals")
        if not key.startswith(prefix) or (code is not None and code != error_code):
            continue
        redirect = rule["Redirect"]
        if "ReplaceKeyWith" in redirect:
            return str(redirect["ReplaceKeyWith"])
        return str(redirect.get("ReplaceKeyPrefixWith", "")) + key[len(prefix) :]
    return None
