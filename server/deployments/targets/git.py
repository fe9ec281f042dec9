"""Running git for the GitHub Pages target: a bounded time per command, an environment of
its own, and failures mapped to the errors of errors.py.

The environment isolates git from the machine's and the user's configuration (no global or
system config, no terminal prompts, C locale for stable messages), restricts the transports
(`GIT_ALLOW_PROTOCOL`: https, plus file for local remotes when allowed, never `ext::` and the
like) and carries the token, when there is one, as an `http.extraHeader` set through
`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/`GIT_CONFIG_VALUE_0`: never in the remote URL, never in
the command line (which other users of the machine can read in /proc), never in a log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.core.errors import ForgeError
from server.deployments.targets import errors

log = logging.getLogger(__name__)

NAME = "GitHub Pages"
SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin"

_REFUSED_HINTS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "returned error: 401",
    "returned error: 403",
    "permission denied",
    "permission to ",
    "invalid username or password",
)
_NOT_FOUND_HINTS = (
    "repository not found",
    "returned error: 404",
    "does not appear to be a git repository",
    "not found",
)
_UNREACHABLE_HINTS = (
    "could not resolve host",
    "failed to connect",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "unable to access",
    "returned error: 5",
)


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


def git_environment(
    home: str,
    *,
    token: str | None,
    token_user: str,
    allow_local: bool,
    ca_file: str | None = None,
    search_path: str = SEARCH_PATH,
) -> dict[str, str]:
    env = {
        "PATH": search_path,
        "HOME": home,
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_ALLOW_PROTOCOL": "https:file" if allow_local else "https",
        "GIT_AUTHOR_NAME": "Forge",
        "GIT_AUTHOR_EMAIL": "forge@localhost",
        "GIT_COMMITTER_NAME": "Forge",
        "GIT_COMMITTER_EMAIL": "forge@localhost",
    }
    if ca_file:
        env["GIT_SSL_CAINFO"] = ca_file
    if token:
        credentials = base64.b64encode(f"{token_user}:{token}".encode()).decode()
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {credentials}",
        }
    return env


async def run_git(
    args: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    secrets: Sequence[str] = (),
) -> GitResult:
    """Runs `git <args>`; a command that outlives `timeout` is killed (UNAVAILABLE)."""
    try:
        process = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        log.error("git is not installed (searched %s)", env.get("PATH", ""))
        raise errors.unavailable(NAME, "git is not installed on the server") from None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        raise errors.unavailable(NAME, f"git {args[0]} did not finish in time") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    result = GitResult(
        process.returncode or 0,
        stdout.decode(errors="replace"),
        _redacted(stderr.decode(errors="replace"), secrets),
    )
    if result.returncode != 0:
        log.warning(
            "git %s exited with %d: %s",
            args[0],
            result.returncode,
            (result.stderr.strip().splitlines() or [""])[-1],
        )
    return result


def _redacted(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def failure(verb: str, result: GitResult) -> ForgeError:
    """What a failed `git <verb>` against the remote means for the caller."""
    said = result.stderr.lower()
    if any(hint in said for hint in _REFUSED_HINTS):
        return errors.refused(NAME, f"git {verb} was not authorized")
    if any(hint in said for hint in _NOT_FOUND_HINTS):
        return errors.not_found(NAME, "the repository")
    if any(hint in said for hint in _UNREACHABLE_HINTS):
        return errors.unavailable(NAME, f"git {verb} could not reach the remote")
    return errors.rejected(NAME, f"git {verb} exited with status {result.returncode}")
