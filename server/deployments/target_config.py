"""A deploy target's settings as a request gives them: checked per kind, with the field paths
of the contract (`deploy_target.<kind>.<field>`), and turned into the live target that
publishes (`make_target`), with the server's API endpoints (Settings), never the caller's:
a caller-chosen endpoint would let anyone aim the server, and their token, anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.config import Settings
from server.core.errors import Violations
from server.deployments.targets.base import DeployTarget
from server.deployments.targets.github_pages import (
    BRANCH,
    GitHubPagesTarget,
    GitPagesOptions,
    is_local_remote,
    pages_url,
)
from server.deployments.targets.http import HttpOptions
from server.deployments.targets.netlify import NetlifyTarget
from server.deployments.targets.vercel import PROJECT_NAME, VercelTarget
from server.deployments.views import TargetKind

MAX_DISPLAY_NAME = 100
MAX_TOKEN_CHARS = 4096
HINT_CHARS = 4

# The proto field of each kind's settings, and each setting's checker (None: optional).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9._/-]{0,512}$")
_REGION = re.compile(r"^[a-z0-9-]{0,32}$")
_ACCESS_KEY_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_SITE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_TEAM_ID = re.compile(r"^[A-Za-z0-9_-]{0,64}$")

FIELD_OF_KIND = {
    TargetKind.S3_WEBSITE: "s3_website",
    TargetKind.NETLIFY: "netlify",
    TargetKind.VERCEL: "vercel",
    TargetKind.GITHUB_PAGES: "github_pages",
}
NEEDS_TOKEN = frozenset({TargetKind.S3_WEBSITE, TargetKind.NETLIFY, TargetKind.VERCEL})


@dataclass(frozen=True)
class TargetDraft:
    """A CreateDeployTarget request: the kind (from the oneof), its settings, the token."""

    kind: TargetKind | None
    config: Mapping[str, str]
    token: str
    display_name: str = ""


def token_hint(token: str) -> str:
    """The last few characters, and never more than a quarter of the token."""
    shown = min(HINT_CHARS, len(token) // 4)
    return token[-shown:] if shown else ""


def checked(draft: TargetDraft, settings: Settings) -> TargetDraft:
    """The draft with its settings trimmed; INVALID_ARGUMENT naming every bad field."""
    violations = Violations()
    name = draft.display_name.strip()
    if len(name) > MAX_DISPLAY_NAME or any(not char.isprintable() for char in name):
        violations.add(
            "deploy_target.display_name",
            f"must be at most {MAX_DISPLAY_NAME} printable characters",
        )
    token = draft.token
    if token and (len(token) > MAX_TOKEN_CHARS or not all("!" <= c <= "~" for c in token)):
        # Says what is wrong with the token, never the token.
        violations.add(
            "deploy_target.token",
            f"must be at most {MAX_TOKEN_CHARS} printable ASCII characters without spaces",
        )
    if draft.kind is None:
        violations.add(
            "deploy_target",
            "one of s3_website, netlify, vercel or github_pages is required",
        )
        violations.raise_if_any()
    assert draft.kind is not None
    config = {key: value.strip() for key, value in draft.config.items()}
    where = f"deploy_target.{FIELD_OF_KIND[draft.kind]}"
    if draft.kind in NEEDS_TOKEN and not token:
        violations.add("deploy_target.token", f"is required for {FIELD_OF_KIND[draft.kind]}")
    _check_config(draft.kind, config, where, settings, violations)
    violations.raise_if_any()
    return TargetDraft(draft.kind, config, token, name)


def _check_config(
    kind: TargetKind,
    config: Mapping[str, str],
    where: str,
    settings: Settings,
    violations: Violations,
) -> None:
    def need(field: str, pattern: re.Pattern[str], description: str) -> None:
        value = config.get(field, "")
        if not value:
            violations.add(f"{where}.{field}", "is required")
        elif not pattern.match(value):
            violations.add(f"{where}.{field}", description)

    def may(field: str, pattern: re.Pattern[str], description: str) -> None:
        value = config.get(field, "")
        if value and not pattern.match(value):
            violations.add(f"{where}.{field}", description)

    if kind is TargetKind.S3_WEBSITE:
        need("bucket", _BUCKET, "must be an S3 bucket name (3-63 of a-z, 0-9, '.', '-')")
        need("access_key_id", _ACCESS_KEY_ID, "must be printable ASCII without spaces")
        may("region", _REGION, "must be an AWS region name, e.g. eu-west-1")
        prefix = config.get("prefix", "")
        if not _PREFIX.match(prefix) or ".." in prefix.split("/"):
            violations.add(f"{where}.prefix", "must be a key prefix without '..' segments")
    elif kind is TargetKind.NETLIFY:
        need("site_id", _SITE_ID, "must be a Netlify site id or name")
    elif kind is TargetKind.VERCEL:
        need("project_name", PROJECT_NAME, "must be a Vercel project name (a-z, 0-9, . _ -)")
        may("team_id", _TEAM_ID, "must be a Vercel team id")
    else:
        remote = config.get("remote_url", "")
        parts = urlsplit(remote)
        local = settings.deploy_git_allow_local_remotes and is_local_remote(remote)
        if not remote:
            violations.add(f"{where}.remote_url", "is required")
        elif not (parts.scheme == "https" and parts.hostname) and not local:
            violations.add(f"{where}.remote_url", "must be an https:// git remote URL")
        elif parts.username or parts.password:
            violations.add(
                f"{where}.remote_url", "must not hold credentials: give the token instead"
            )
        may("branch", BRANCH, "must be a git branch name")
        site_url = config.get("site_url", "")
        if site_url and urlsplit(site_url).scheme not in ("http", "https"):
            violations.add(f"{where}.site_url", "must be an http(s):// URL")
        elif not site_url and remote and pages_url(remote) is None:
            violations.add(
                f"{where}.site_url", "is required unless the remote is a github.com repository"
            )


def make_target(
    kind: TargetKind, config: Mapping[str, str], token: str, settings: Settings
) -> DeployTarget:
    """The target that publishes to what `config` names, with `token` (plain text)."""
    http = HttpOptions(poll_interval=settings.deploy_poll_seconds)
    if kind is TargetKind.S3_WEBSITE:
        # Imported when first needed: aioboto3 and botocore are large, and many servers
        # never publish to S3 (tests/test_lazy_imports.py).
        from server.deployments.targets.s3 import S3SiteOptions, S3SiteTarget

        return S3SiteTarget(
            S3SiteOptions(
                bucket=config["bucket"],
                access_key_id=config["access_key_id"],
                secret_access_key=token,
                prefix=config.get("prefix", ""),
                region=config.get("region") or "us-east-1",
                endpoint_url=settings.deploy_s3_endpoint_url,
                website_url=settings.deploy_s3_website_url,
            )
        )
    if kind is TargetKind.NETLIFY:
        return NetlifyTarget(
            config["site_id"], token, api_url=settings.deploy_netlify_api_url, options=http
        )
    if kind is TargetKind.VERCEL:
        return VercelTarget(
            config["project_name"],
            token,
            team_id=config.get("team_id") or None,
            api_url=settings.deploy_vercel_api_url,
            options=http,
        )
    return GitHubPagesTarget(
        GitPagesOptions(
            remote=config["remote_url"],
            token=token or None,
            branch=config.get("branch") or "gh-pages",
            page_url=config.get("site_url") or None,
            allow_local_remotes=settings.deploy_git_allow_local_remotes,
        )
    )
