"""Publishing a site to GitHub Pages: pushing it to a branch of a git remote (here a local
bare repository, read back with git)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from server.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from server.deployments.targets import errors
from server.deployments.targets.base import no_progress
from server.deployments.targets.git import git_environment, run_git
from server.deployments.targets.github_pages import GitHubPagesTarget, GitPagesOptions, pages_url
from tests.deployments.git_http import GitHttpsServer
from tests.deployments.support import ProgressLog, make_site

PAGE_URL = "https://pages.example/site/"


async def git(repository: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "git",
        f"--git-dir={repository}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.fixture
async def remote(tmp_path: Path) -> Path:
    repository = tmp_path / "pages.git"
    process = await asyncio.create_subprocess_exec(
        "git", "init", "--quiet", "--bare", str(repository)
    )
    assert await process.wait() == 0
    return repository


def target(remote: Path, **options: object) -> GitHubPagesTarget:
    return GitHubPagesTarget(
        GitPagesOptions(
            remote=str(remote),
            page_url=PAGE_URL,
            allow_local_remotes=True,
            **options,  # type: ignore[arg-type]
        )
    )


async def branch_files(remote: Path, branch: str = "gh-pages") -> dict[str, bytes]:
    names = (await git(remote, "ls-tree", "-r", "--name-only", branch)).split()
    return {name: (await git(remote, "show", f"{branch}:{name}")).encode() for name in names}


async def test_the_site_is_pushed_to_the_branch_as_one_commit(
    remote: Path, progress: ProgressLog
) -> None:
    site = make_site({"index.html": "<h1>hi</h1>", "_assets/app.js": "alert(1)"})
    published = await target(remote).publish("d1", site, progress)

    assert published.url == PAGE_URL
    assert await branch_files(remote) == {
        ".nojekyll": b"",
        "_assets/app.js": b"alert(1)",
        "index.html": b"<h1>hi</h1>",
    }
    assert (await git(remote, "rev-parse", "gh-pages")).strip() == published.handle["commit"]
    assert (await git(remote, "log", "--format=%s", "gh-pages")).strip() == "Deploy d1"
    assert progress.phases == ["preparing", "uploading"]


async def test_a_second_deploy_replaces_the_site(remote: Path) -> None:
    pages = target(remote, branch="site")
    await pages.publish("d1", make_site({"index.html": "one", "old.html": "gone"}), no_progress)
    await pages.publish("d2", make_site({"index.html": "two"}), no_progress)

    assert await branch_files(remote, "site") == {".nojekyll": b"", "index.html": b"two"}
    assert (await git(remote, "rev-list", "--count", "site")).strip() == "1"


async def test_remove_deletes_the_branch_only_while_it_holds_the_deployment(
    remote: Path,
) -> None:
    pages = target(remote)
    first = await pages.publish("d1", make_site({"index.html": "one"}), no_progress)
    second = await pages.publish("d2", make_site({"index.html": "two"}), no_progress)

    await pages.remove(first.handle)  # a newer deploy owns the branch: it stays
    assert (await git(remote, "rev-parse", "gh-pages")).strip() == second.handle["commit"]

    await pages.remove(second.handle)
    await pages.remove(second.handle)  # twice is fine
    assert (await git(remote, "branch", "--list")).strip() == ""


async def test_a_remote_that_is_not_a_repository_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition) as raised:
        await target(tmp_path / "nothing.git").publish(
            "d1", make_site({"index.html": "x"}), no_progress
        )
    assert raised.value.reason == errors.NOT_FOUND


def test_remotes_must_be_https_without_credentials() -> None:
    for remote in (
        "http://github.com/o/r.git",
        "/srv/git/site.git",  # local remotes only where allowed
        "ext::sh -c touch% /tmp/pwned",
        "https://user:secret@github.com/o/r.git",
        "--upload-pack=touch /tmp/pwned",
    ):
        with pytest.raises(InvalidArgument) as raised:
            GitHubPagesTarget(GitPagesOptions(remote=remote, page_url=PAGE_URL))
        assert [v.field for v in raised.value.violations] == ["remote"], remote
        assert "secret" not in raised.value.message


def test_a_bad_branch_name_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as raised:
        GitHubPagesTarget(GitPagesOptions(remote="https://github.com/o/r", branch="-x..y"))
    assert [v.field for v in raised.value.violations] == ["branch"]


def test_the_pages_url_comes_from_a_github_remote() -> None:
    assert pages_url("https://github.com/Forge-Dev/site.git") == "https://forge-dev.github.io/site/"
    assert pages_url("https://github.com/forge-dev/forge-dev.github.io") == (
        "https://forge-dev.github.io/"
    )
    assert pages_url("https://gitlab.com/forge-dev/site.git") is None
    with pytest.raises(InvalidArgument) as raised:
        GitHubPagesTarget(GitPagesOptions(remote="https://git.example/o/r.git"))
    assert [v.field for v in raised.value.violations] == ["page_url"]


async def test_the_token_reaches_an_https_remote_as_a_header_not_in_the_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "ghp_the-right-token"
    await git(tmp_path / "site.git", "init", "--quiet", "--bare")
    async with GitHttpsServer(tmp_path, user="x-access-token", token=token) as server:
        remote = f"{server.url}/site.git"

        def pages(with_token: str) -> GitHubPagesTarget:
            return GitHubPagesTarget(
                GitPagesOptions(
                    remote=remote,
                    token=with_token,
                    page_url=PAGE_URL,
                    ca_file=str(server.ca_file),
                )
            )

        published = await pages(token).publish("d1", make_site({"index.html": "hi"}), no_progress)
        with pytest.raises(FailedPrecondition) as raised:
            await pages("ghp_a-wrong-token").publish(
                "d2", make_site({"index.html": "no"}), no_progress
            )

    assert await branch_files(tmp_path / "site.git") == {".nojekyll": b"", "index.html": b"hi"}
    assert published.handle == {
        "remote": remote,
        "branch": "gh-pages",
        "commit": published.handle["commit"],
    }
    assert raised.value.reason == errors.REFUSED
    assert "ghp_" not in str(raised.value)
    assert "ghp_" not in caplog.text
    assert "git push exited with 128" in caplog.text  # the failure was logged, token-free


async def test_a_server_without_git_says_so(tmp_path: Path) -> None:
    env = git_environment(
        str(tmp_path), token=None, token_user="x", allow_local=True, search_path=str(tmp_path)
    )
    with pytest.raises(Unavailable) as raised:
        await run_git(["version"], cwd=str(tmp_path), env=env, timeout=10)
    assert "git is not installed" in raised.value.message
