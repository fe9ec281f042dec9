"""The bucket website configuration that makes one deployment of an S3 site live.

Every deployment is stored whole under its own prefix, `<prefix>deploys/<id>/…`, and never
changes. What visitors of the website endpoint see is decided by the bucket's website
configuration alone, and S3 replaces that configuration in one request
(PutBucketWebsite): the switch from one deployment to the next is that single request, so a
visitor is served either the old deployment or the new one, never a mix of their files.

The configuration routes by S3's redirect rules (first match wins), for both 404 and 403
(a bucket that does not grant public `s3:ListBucket` answers 403 for missing keys):

- a missing key under `<prefix>deploys/` (a page the deployment lacks, or a deployment
  since removed) → the live deployment's fallback page (`404.html` if the site has one,
  else `index.html`: single-page apps route on the client);
- any other missing key under `<prefix>` (the site's public paths: `/`, `/about.html`) →
  the same key under the live deployment's prefix.

So `/about.html` redirects (302: browsers must not cache it across switches, as they would
a 301) to `/deploys/<id>/about.html`, whose relative links stay inside that deployment.
Older deployments stay reachable at their own prefixes until removed, so a visitor who
loaded a page just before a switch keeps getting a consistent site.

With an empty prefix the bucket is the site's alone: the configuration is written whole,
its error document pointing at the fallback page too. With a prefix the bucket may host
other sites (their prefixes must not nest inside ours): the rules of other prefixes and the
error document are kept; each site takes four of the 50 routing rules S3 allows a bucket.
Reading and writing the configuration are then two requests, so two sites in one bucket
must not switch at the same instant.
"""

from __future__ import annotations

from typing import Any

INDEX_DOCUMENT = "index.html"
ERROR_PAGE = "404.html"
REDIRECT_CODE = "302"
ERROR_CODES = ("404", "403")


def deployments_prefix(prefix: str) -> str:
    return f"{prefix}deploys/"


def deployment_prefix(prefix: str, deployment_id: str) -> str:
    return f"{deployments_prefix(prefix)}{deployment_id}/"


def _ours(rule: dict[str, Any], prefix: str) -> bool:
    if not prefix:
        return True
    condition = rule.get("Condition") or {}
    return str(condition.get("KeyPrefixEquals", "")).startswith(prefix)


def switch_rules(prefix: str, deployment_id: str, fallback: str) -> list[dict[str, Any]]:
    """The routing rules that serve deployment `deployment_id` (see the module docstring)."""
    live = deployment_prefix(prefix, deployment_id)
    inside = [
        {
            "Condition": {
                "KeyPrefixEquals": deployments_prefix(prefix),
                "HttpErrorCodeReturnedEquals": code,
            },
            "Redirect": {"ReplaceKeyWith": live + fallback, "HttpRedirectCode": REDIRECT_CODE},
        }
        for code in ERROR_CODES
    ]
    public = [
        {
            "Condition": {
                **({"KeyPrefixEquals": prefix} if prefix else {}),
                "HttpErrorCodeReturnedEquals": code,
            },
            "Redirect": {"ReplaceKeyPrefixWith": live, "HttpRedirectCode": REDIRECT_CODE},
        }
        for code in ERROR_CODES
    ]
    return inside + public


def live_deployment(configuration: dict[str, Any], prefix: str) -> str | None:
    """The id of the deployment the configuration serves under `prefix`, if any."""
    marker = deployments_prefix(prefix)
    for rule in configuration.get("RoutingRules") or []:
        if not _ours(rule, prefix):
            continue
        target = str((rule.get("Redirect") or {}).get("ReplaceKeyPrefixWith", ""))
        if target.startswith(marker) and target.endswith("/"):
            return target[len(marker) : -1] or None
    return None


def switched(
    existing: dict[str, Any], prefix: str, deployment_id: str, fallback: str
) -> dict[str, Any]:
    """The configuration to put so that `deployment_id` is live under `prefix`."""
    rules = switch_rules(prefix, deployment_id, fallback)
    if not prefix:
        return {
            "IndexDocument": {"Suffix": INDEX_DOCUMENT},
            "ErrorDocument": {"Key": deployment_prefix(prefix, deployment_id) + fallback},
            "RoutingRules": rules,
        }
    others = [rule for rule in existing.get("RoutingRules") or [] if not _ours(rule, prefix)]
    configuration: dict[str, Any] = {
        "IndexDocument": existing.get("IndexDocument") or {"Suffix": INDEX_DOCUMENT},
        "RoutingRules": rules + others,
    }
    if existing.get("ErrorDocument"):
        configuration["ErrorDocument"] = existing["ErrorDocument"]
    return configuration


def unswitched(existing: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The configuration without the rules (and error document) serving `prefix`."""
    configuration: dict[str, Any] = {
        "IndexDocument": existing.get("IndexDocument") or {"Suffix": INDEX_DOCUMENT}
    }
    others = [rule for rule in existing.get("RoutingRules") or [] if not _ours(rule, prefix)]
    if others:
        configuration["RoutingRules"] = others
    error_key = str((existing.get("ErrorDocument") or {}).get("Key", ""))
    if error_key and not error_key.startswith(deployments_prefix(prefix)):
        configuration["ErrorDocument"] = existing["ErrorDocument"]
    return configuration


def fallback_page(paths: set[str] | frozenset[str]) -> str:
    return ERROR_PAGE if ERROR_PAGE in paths else INDEX_DOCUMENT
