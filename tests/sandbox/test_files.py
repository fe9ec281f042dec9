"""Files under /workspace through the archive API: round trips, listing, deleting, limits, and
every way out of /workspace refused."""

from __future__ import annotations

import pytest

from server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from server.sandbox.limits import LimitRequest
from server.sandbox.manager import SandboxManager
from server.sandbox.views import SandboxView
from tests.sandbox.support import Team, shell


@pytest.fixture
async def sandbox(manager: SandboxManager, team: Team) -> SandboxView:
    return await manager.create(team.editor, team.project_id, "python", LimitRequest())


async def test_write_read_list_delete(
    manager: SandboxManager, team: Team, sandbox: SandboxView
) -> None:
    editor = team.editor
    entry = await manager.write_file(editor, sandbox.id, "src/app/main.py", b"print(1)\n", 0o755)
    assert (entry.path, entry.size, entry.mode) == ("/workspace/src/app/main.py", 9, 0o755)
    await manager.write_file(editor, sandbox.id, "/workspace/README", b"hi", 0)
    # Replacing keeps one file with the new content.
    await manager.write_file(editor, sandbox.id, "README", b"hello", 0)

    info, content = await manager.read_file(team.viewer, sandbox.id, "/workspace/README")
    assert content == b"hello"
    assert (info.size, info.mode, info.is_dir) == (5, 0o644, False)

    # Files written through the API belong to the sandbox user and run.
    ran = await shell(manager, editor, sandbox.id, "stat -c '%u %a' src/app/main.py README")
    assert ran.stdout == b"1000 755\n1000 644\n"

    top = await manager.list_files(team.viewer, sandbox.id, "", False, None, 100)
    assert [(f.path, f.is_dir) for f in top.files] == [
        ("/workspace/README", False),
        ("/workspace/src", True),
    ]
    everything = await manager.list_files(team.viewer, sandbox.id, "/workspace", True, None, 100)
    assert [f.path for f in everything.files] == [
        "/workspace/README",
        "/workspace/src",
        "/workspace/src/app",
        "/workspace/src/app/main.py",
    ]
    page = await manager.list_files(team.viewer, sandbox.id, "", True, None, 3)
    assert page.next_after == "/workspace/src/app"
    rest = await manager.list_files(team.viewer, sandbox.id, "", True, page.next_after, 3)
    assert [f.path for f in rest.files] == ["/workspace/src/app/main.py"]
    assert rest.next_after is None
    sub = await manager.list_files(team.viewer, sandbox.id, "src", False, None, 100)
    assert [f.path for f in sub.files] == ["/workspace/src/app"]

    with pytest.raises(FailedPrecondition) as refused:
        await manager.delete_file(editor, sandbox.id, "src", False)
    assert refused.value.reason == "DIRECTORY_NOT_EMPTY"
    await manager.delete_file(editor, sandbox.id, "src", True)
    await manager.delete_file(editor, sandbox.id, "README", False)
    empty = await manager.list_files(team.viewer, sandbox.id, "", True, None, 100)
    assert empty.files == []
    with pytest.raises(NotFound) as missing:
        await manager.read_file(team.viewer, sandbox.id, "README")
    assert missing.value.reason == "FILE_NOT_FOUND"
    with pytest.raises(NotFound):
        await manager.delete_file(editor, sandbox.id, "README", False)


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../etc/passwd",
        "/workspace/../etc/passwd",
        "/workspaces/x",
        "bad\x00name",
    ],
)
async def test_paths_outside_the_workspace_are_invalid(
    manager: SandboxManager, team: Team, sandbox: SandboxView, path: str
) -> None:
    for attempt in (
        manager.write_file(team.editor, sandbox.id, path, b"pwned", 0),
        manager.read_file(team.editor, sandbox.id, path),
        manager.delete_file(team.editor, sandbox.id, path, True),
        manager.list_files(team.editor, sandbox.id, path, False, None, 10),
    ):
        with pytest.raises(InvalidArgument) as failure:
            await attempt
        assert [v.field for v in failure.value.violations] == ["path"]


async def test_symlinks_leading_out_are_invalid_and_inside_are_followed(
    manager: SandboxManager, team: Team, sandbox: SandboxView
) -> None:
    await shell(
        manager,
        team.editor,
        sandbox.id,
        "mkdir -p real && echo inside > real/f.txt"
        " && ln -s /etc etc && ln -s /etc/passwd pw && ln -s real alias && ln -s /tmp tmp",
    )
    for path in ("etc/passwd", "pw", "etc", "tmp/x", "tmp"):
        with pytest.raises(InvalidArgument) as failure:
            await manager.read_file(team.editor, sandbox.id, path)
        assert "leads out of /workspace" in failure.value.violations[0].description
        with pytest.raises(InvalidArgument):
            await manager.write_file(team.editor, sandbox.id, path, b"pwned", 0)
    with pytest.raises(InvalidArgument):
        await manager.list_files(team.editor, sandbox.id, "etc", False, None, 10)
    # A link that stays inside is fine.
    _, content = await manager.read_file(team.editor, sandbox.id, "alias/f.txt")
    assert content == b"inside\n"
    await manager.write_file(team.editor, sandbox.id, "alias/g.txt", b"via link", 0)
    _, content = await manager.read_file(team.editor, sandbox.id, "real/g.txt")
    assert content == b"via link"
    # Removing a link removes the link, not what it points to.
    await manager.delete_file(team.editor, sandbox.id, "etc", False)
    still = await shell(manager, team.editor, sandbox.id, "test -f /etc/passwd && echo yes")
    assert still.stdout == b"yes\n"


async def test_size_limits(manager: SandboxManager, team: Team, sandbox: SandboxView) -> None:
    limit = manager.settings.sandbox_max_file_bytes
    with pytest.raises(InvalidArgument) as failure:
        await manager.write_file(team.editor, sandbox.id, "big", b"x" * (limit + 1), 0)
    assert [v.field for v in failure.value.violations] == ["content"]
    await shell(manager, team.editor, sandbox.id, f"head -c {limit + 1} /dev/zero > big")
    with pytest.raises(FailedPrecondition) as refused:
        await manager.read_file(team.editor, sandbox.id, "big")
    assert refused.value.reason == "FILE_TOO_LARGE"


async def test_writing_beyond_the_disk_cap_is_refused(manager: SandboxManager, team: Team) -> None:
    mib = 1024 * 1024
    small = await manager.create(
        team.editor, team.project_id, "python", LimitRequest(disk_bytes=2 * mib)
    )
    await manager.write_file(team.editor, small.id, "one", b"x" * mib, 0)
    from server.core.errors import ResourceExhausted

    with pytest.raises(ResourceExhausted) as full:
        await manager.write_file(team.editor, small.id, "two", b"x" * (2 * mib), 0)
    assert full.value.reason == "SANDBOX_DISK_FULL"
    ran = await shell(manager, team.editor, small.id, "head -c 3000000 /dev/zero > three")
    assert b"No space left on device" in ran.stderr


async def test_file_requests_are_validated(
    manager: SandboxManager, team: Team, sandbox: SandboxView
) -> None:
    with pytest.raises(InvalidArgument) as failure:
        await manager.write_file(team.editor, sandbox.id, "", b"", 0o70000)
    assert {v.field for v in failure.value.violations} == {"path", "mode"}
    with pytest.raises(InvalidArgument):
        await manager.delete_file(team.editor, sandbox.id, "/workspace", True)
    await manager.write_file(team.editor, sandbox.id, "plain", b"", 0)
    with pytest.raises(InvalidArgument) as failure:
        await manager.write_file(team.editor, sandbox.id, "plain/child", b"", 0)
    assert "not a directory" in failure.value.violations[0].description
    await shell(manager, team.editor, sandbox.id, "mkdir adir")
    with pytest.raises(InvalidArgument):
        await manager.write_file(team.editor, sandbox.id, "adir", b"", 0)
    with pytest.raises(InvalidArgument):
        await manager.read_file(team.editor, sandbox.id, "adir")
