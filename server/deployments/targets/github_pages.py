"""GitHub Pages (or any git remote that serves a branch as a site): the site is pushed as a
single commit, with a `.nojekyll` file (so Pages publishes files starting with `_` as they
are), to a branch (default gh-pages), force-pushed: the branch *is* the site, and a push
replaces it in one ref update, so visitors get the old or the new site.

The work tree is a temporary directory, removed afterwards. The token (HTTPS remotes) goes to
git as an extra HTTP header through the environment (see git.py). Remotes are https:// URLs;
local ones (a path or file://) only when `allow_local_remotes` is set, as tests do.

`remove` deletes the branch, only while it still holds this deployment's commit: the
delete is a push with `--force-with-lease=<branch>:<commit>`, so a newer deploy pushed
meanwhile is never deleted.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from server.core.errors import Violations
from server.deployments.site import Site
from server.deployments.targets import errors
from server.deployments.targets.base import Handle, Phase, Progress, ProgressCallback, Published
from server.deployments.targets.git import NAME, failure, git_environment, run_git

NO_JEKYLL = ".nojekyll"
BRANCH = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*//)(?!.*\.lock$)(?!.*/$)[A-Za-z0-9._/-]{1,200}$")
_GITHUB_REMOTE = re.compile(r"^/([A-Za-z0-9-]+)/([A-Za-z0-9._-]+?)(?:\.git)?/?$")
_STALE_LEASE_HINTS = ("stale info", "[rejected]")


@dataclass(frozen=True)
class GitPagesOptions:
    remote: str
    """https://github.com/<owner>/<repo>.git, or any https git remote."""
    token: str | None = None
    branch: str = "gh-pages"
    page_url: str | None = None
    """The site's URL; derived for github.com remotes when unset."""
    token_user: str = "x-access-token"  # noqa: S105 (a user name, not a secret)
    """The user name sent with the token (GitHub takes any; this is what its apps use)."""
    allow_local_remotes: bool = False
    ca_file: str | None = None
    """Certificate authorities (PEM) to trust for the remote, instead of the system's."""
    timeout: float = 300.0
    """Per git command."""
    commit_message: str = "Deploy {deployment_id}"


def pages_url(remote: str) -> str | None:
    """https://<owner>.github.io/<repo>/ for a github.com remote (the user or organization
    site for a repository named <owner>.github.io)."""
    parts = urlsplit(remote)
    if parts.scheme != "https" or parts.hostname != "github.com":
        return None
    match = _GITHUB_REMOTE.match(parts.path)
    if match is None:
        return None
    owner, repository = match.group(1).lower(), match.group(2)
    if repository.lower() == f"{owner}.github.io":
        return f"https://{owner}.github.io/"
    return f"https://{owner}.github.io/{repository}/"


def is_local_remote(remote: str) -> bool:
    return remote.startswith(("/", "file://"))


def check_options(options: GitPagesOptions) -> None:
    """Raises InvalidArgument naming each bad option."""
    violations = Violations()
    remote = options.remote
    https = urlsplit(remote).scheme == "https" and bool(urlsplit(remote).hostname)
    local = options.allow_local_remotes and is_local_remote(remote)
    violations.check(https or local, "remote", "must be an https:// git remote URL")
    violations.check(
        not urlsplit(remote).username and not urlsplit(remote).password,
        "remote",
        "must not carry credentials (pass the token separately)",
    )
    violations.check(bool(BRANCH.match(options.branch)), "branch", "is not a valid branch name")
    violations.check(
        bool(options.page_url or pages_url(remote)),
        "page_url",
        "is required unless the remote is a github.com repository",
    )
    violations.raise_if_any()


class GitHubPagesTarget:
    kind = "github_pages"

    def __init__(self, options: GitPagesOptions) -> None:
        check_options(options)
        self.options = options
        self.url = options.page_url or pages_url(options.remote) or ""

    def _env(self, home: str) -> dict[str, str]:
        return git_environment(
            home,
            token=self.options.token,
            token_user=self.options.token_user,
            allow_local=self.options.allow_local_remotes,
            ca_file=self.options.ca_file,
        )

    async def _git(self, work: str, *args: str, check: str | None = None) -> str:
        result = await run_git(
            args,
            cwd=work,
            env=self._env(work),
            timeout=self.options.timeout,
            secrets=[self.options.token or ""],
        )
        if result.returncode != 0:
            if check is None:
                raise errors.rejected(NAME, f"git {args[0]} exited with {result.returncode}")
            raise failure(check, result)
        return result.stdout

    async def publish(
        self, deployment_id: str, site: Site, progress: ProgressCallback
    ) -> Published:
        await progress(Progress(Phase.PREPARING))
        work = await asyncio.to_thread(tempfile.mkdtemp, prefix="forge-pages-")
        try:
            tree = str(Path(work) / "site")
            await asyncio.to_thread(_write_tree, tree, site)
            await self._git(work, "init", "-q", f"--initial-branch={self.options.branch}", tree)
            await self._git(tree, "add", "--all")
            message = self.options.commit_message.format(deployment_id=deployment_id)
            await self._git(tree, "commit", "-q", "--no-verify", "-m", message)
            commit = (await self._git(tree, "rev-parse", "HEAD")).strip()
            await progress(
                Progress(
                    Phase.UPLOADING,
                    files_total=len(site),
                    bytes_total=site.total_bytes,
                )
            )
            await self._git(
                tree,
                "push",
                "--quiet",
                "--force",
                self.options.remote,
                f"HEAD:refs/heads/{self.options.branch}",
                check="push",
            )
            await progress(
                Progress(
                    Phase.UPLOADING,
                    files_total=len(site),
                    files_done=len(site),
                    bytes_total=site.total_bytes,
                    bytes_done=site.total_bytes,
                )
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
        return Published(
            url=self.url,
            handle={"remote": self.options.remote, "branch": self.options.branch, "commit": commit},
        )

    async def remove(self, handle: Handle) -> None:
        branch, commit = str(handle["branch"]), str(handle["commit"])
        ref = f"refs/heads/{branch}"
        work = await asyncio.to_thread(tempfile.mkdtemp, prefix="forge-pages-")
        try:
            listed = await self._git(work, "ls-remote", self.options.remote, ref, check="ls-remote")
            current = listed.split()[0] if listed.strip() else None
            if current != commit:
                return  # gone already, or a newer deploy owns the branch now
            await self._git(work, "init", "-q", "--bare", "scratch.git")
            result = await run_git(
                [
                    "push",
                    "--quiet",
                    f"--force-with-lease={ref}:{commit}",
                    self.options.remote,
                    f":{ref}",
                ],
                cwd=str(Path(work) / "scratch.git"),
                env=self._env(work),
                timeout=self.options.timeout,
                secrets=[self.options.token or ""],
            )
            if result.returncode != 0 and not any(
                hint in result.stderr for hint in _STALE_LEASE_HINTS
            ):
                raise failure("push", result)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)


def _write_tree(root: str, site: Site) -> None:
    base = Path(root)
    base.mkdir()
    for file in site:
        target = base.joinpath(*file.path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.data)
    nojekyll = base / NO_JEKYLL
    if not nojekyll.exists():
        nojekyll.write_bytes(b"")
