"""The file RPCs against code in the sandbox that swaps a directory with a symlink to /etc
as fast as it can (renameat2 RENAME_EXCHANGE): no read returns anything from outside
/workspace, and no write lands outside it."""

from __future__ import annotations

import asyncio

import pytest
from docker.models.containers import Container

import docker
from server.core.errors import InvalidArgument, NotFound
from server.sandbox.backend import LABEL_SANDBOX_ID
from server.sandbox.limits import LimitRequest
from server.sandbox.parts import SandboxParts
from server.sandbox.views import SandboxView
from tests.sandbox.support import Team, collect, params

SWAPPER = rb"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs("r", exist_ok=True)
for name in ("passwd", "shadow"):
    with open(f"r/{name}", "w") as f:
        f.write("inside\n")
os.symlink("/etc", "l")
swaps = 0
while True:
    # renameat2(AT_FDCWD, "r", AT_FDCWD, "l", RENAME_EXCHANGE) on x86_64
    if libc.syscall(316, -100, b"r", -100, b"l", 2) != 0:
        sys.exit(f"renameat2 failed: {ctypes.get_errno()}")
    swaps += 1
    if swaps % 5000 == 0:
        print(swaps, flush=True)
"""
SWAP_SECONDS = 20


def container_of(sandbox: SandboxView) -> Container:
    client = docker.from_env()
    (found,) = client.containers.list(filters={"label": f"{LABEL_SANDBOX_ID}={sandbox.id}"})
    return found


def root_output(container: Container, argv: list[str]) -> bytes:
    output = container.exec_run(argv, user="0:0").output
    assert isinstance(output, bytes)
    return output


async def test_swapping_a_directory_for_a_symlink_never_leads_out(
    sandboxes: SandboxParts, team: Team
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    container = container_of(sandbox)
    real_passwd = root_output(container, ["cat", "/etc/passwd"])
    assert real_passwd.startswith(b"root:")

    await sandboxes.files.write(team.editor, sandbox.id, "swap.py", SWAPPER, 0)
    execution = await sandboxes.executions.start_exec(
        team.editor, sandbox.id, params(["python3", "swap.py"], timeout=SWAP_SECONDS), None
    )
    swapping = asyncio.create_task(collect(execution))

    reads = writes = refused = 0
    leaked: list[bytes] = []
    while not swapping.done():
        for name in ("shadow", "passwd"):
            try:
                _, content = await sandboxes.files.read(team.viewer, sandbox.id, f"r/{name}")
            except (InvalidArgument, NotFound):
                refused += 1
                continue
            reads += 1
            if content != b"inside\n" or content == real_passwd:
                leaked.append(content)
        try:
            await sandboxes.files.write(team.editor, sandbox.id, "r/x", b"written", 0)
            writes += 1
        except InvalidArgument:
            refused += 1
    ran = await swapping

    # The swapping ran the whole time, and the API was exercised against it.
    swaps = [int(line) for line in ran.stdout.split()]
    assert ran.exit.timed_out, ran.stderr
    assert swaps
    assert swaps[-1] >= 5000
    assert reads + writes + refused >= 20
    assert reads > 0
    assert writes > 0
    # Nothing from /etc came back, and nothing was written there.
    assert leaked == []
    assert container.exec_run(["test", "-e", "/etc/x"], user="0:0").exit_code == 1
    changed = [str(change["Path"]) for change in container.diff() or []]
    assert not [path for path in changed if path.startswith("/etc")]
    print(f"swaps={swaps[-1]} reads={reads} writes={writes} refused={refused}")


@pytest.mark.parametrize("runtime", ["node"])
async def test_files_work_in_the_node_image(
    sandboxes: SandboxParts, team: Team, runtime: str
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, runtime, LimitRequest()
    )
    await sandboxes.files.write(team.editor, sandbox.id, "a/b/c.js", b"1", 0o600)
    info, content = await sandboxes.files.read(team.viewer, sandbox.id, "a/b/c.js")
    assert (content, info.mode) == (b"1", 0o600)
