"""Sandbox hardening: nothing an execution started outlives it, and no process can trace
another."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from docker.models.containers import Container

from server.sandbox.limits import LimitRequest
from server.sandbox.parts import SandboxParts
from server.sandbox.views import ExitReason
from tests.sandbox.support import Team, params, run
from tests.sandbox.test_file_race import container_of, root_output

GONE_WITHIN_SECONDS = 15.0


def sleepers(container: Container, pattern: str) -> bytes:
    return root_output(container, ["pgrep", "-a", "-f", pattern])


async def wait_until_gone(container: Container, pattern: str) -> None:
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while left := sleepers(container, pattern):
        assert time.monotonic() < deadline, f"still running: {left!r}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("timeout", [2.0, None])
async def test_a_double_forked_process_in_a_new_session_ends_with_its_exec(
    sandboxes: SandboxParts, team: Team, timeout: float | None
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    container = container_of(sandbox)
    # On timeout the exec is killed; without one it exits by itself, leaving the sleeper.
    script = "setsid sh -c 'sleep 600 &' && echo forked" + (" && sleep 30" if timeout else "")
    ran = await run(sandboxes, team.editor, sandbox.id, params(script=script, timeout=timeout))
    assert ran.stdout == b"forked\n"
    assert ran.exit.reason is (ExitReason.TIMEOUT if timeout else ExitReason.EXITED)
    await wait_until_gone(container, "sleep 600")


async def test_ptrace_is_refused(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    program = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    os.execvp('sleep', ['sleep', '30'])\n"
        "for pid in (1, child):\n"
        "    print(libc.ptrace(16, pid, 0, 0), ctypes.get_errno())  # PTRACE_ATTACH\n"
        "os.kill(child, 9)\n"
    )
    ran = await run(
        sandboxes, team.editor, sandbox.id, params(["python3", "-c", program], timeout=20)
    )
    # EPERM (1) for PID 1 and for the caller's own child alike.
    assert ran.stdout == b"-1 1\n-1 1\n", ran.stderr


async def test_a_background_execution_leaves_its_processes_running(
    sandboxes: SandboxParts, team: Team
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    container = container_of(sandbox)
    background = replace(params(script="setsid sh -c 'sleep 602 &'"), background=True)
    assert (await run(sandboxes, team.editor, sandbox.id, background)).exit.exit_code == 0
    # A later execution's leftovers go; the background one's stay.
    await run(sandboxes, team.editor, sandbox.id, params(script="setsid sh -c 'sleep 603 &'"))
    await wait_until_gone(container, "sleep 603")
    assert b"sleep 602" in sleepers(container, "sleep 602")
