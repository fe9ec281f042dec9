"""Files under /workspace through the archive API: round trips, listing, deleting, limits, and
every way out of /workspace refused."""

from __future__ import annotations

import pytest

from server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from server.sandbox.limits import LimitRequest
from server.sandbox.parts import SandboxParts
from server.sandbox.views import SandboxView
from tests.sandbox.support import Team, page_of, shell


@pytest.fixture
async def sandbox(sandboxes: SandboxParts, team: Team) -> SandboxView:
    return await sandboxes.lifecycle.create(team.editor, team.project_id, "python", LimitRequest())


async def test_write_read_list_delete(
    sandboxes: SandboxParts, team: Team, sandbox: SandboxView
) -> None:
    editor = team.editor
    entry = await sandboxes.files.write(editor, sandbox.id, "src/app/main.py", b"print(1)\n", 0o755)
    assert (entry.path, entry.size, entry.mode) == ("/workspace/src/app/main.py", 9, 0o755)
    await sandboxes.files.write(editor, sandbox.id, "/workspace/README", b"hi", 0)
    # Replacing keeps one file with the new content.
    await sandboxes.files.write(editor, sandbox.id, "README", b"hello", 0)

    info, content = await sandboxes.files.read(team.viewer, sandbox.id, "/workspace/README")
    assert content == b"hello"
    assert (info.size, info.mode, info.is_dir) == (5, 0o644, False)

    # Files written through the API belong to the sandbox user and run.
    ran = await shell(sandboxes, editor, sandbox.id, "stat -c '%u %a' src/app/main.py README")
    assert ran.stdout == b"1000 755\n1000 644\n"

    top = await sandboxes.files.list(team.viewer, sandbox.id, "", False, page_of(100))
    assert [(f.path, f.is_dir) for f in top.items] == [
        ("/workspace/README", False),
        ("/workspace/src", True),
    ]
    everything = await sandboxes.files.list(
        team.viewer, sandbox.id, "/workspace", True, page_of(100)
    )
    assert [f.path for f in everything.items] == [
        "/workspace/README",
        "/workspace/src",
        "/workspace/src/app",
        "/workspace/src/app/main.py",
    ]
    page = await sandboxes.files.list(team.viewer, sandbox.id, "", True, page_of(3))
    assert page.next_key == ["/workspace/src/app"]
    rest = await sandboxes.files.list(team.viewer, sandbox.id, "", True, page_of(3, page.next_key))
    assert [f.path for f in rest.items] == ["/workspace/src/app/main.py"]
    assert rest.next_key is None
    sub = await sandboxes.files.list(team.viewer, sandbox.id, "src", False, page_of(100))
    assert [f.path for f in sub.items] == ["/workspace/src/app"]

    with pytest.raises(FailedPrecondition) as refused:
        await sandboxes.files.delete(editor, sandbox.id, "src", False)
    assert refused.value.reason == "DIRECTORY_NOT_EMPTY"
    await sandboxes.files.delete(editor, sandbox.id, "src", True)
    await sandboxes.files.delete(editor, sandbox.id, "README", False)
    empty = await sandboxes.files.list(team.viewer, sandbox.id, "", True, page_of(100))
    assert list(empty.items) == []
    with pytest.raises(NotFound) as missing:
        await sandboxes.files.read(team.viewer, sandbox.id, "README")
    assert missing.value.reason == "FILE_NOT_FOUND"
    with pytest.raises(NotFound):
        await sandboxes.files.delete(editor, sandbox.id, "README", False)


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
    sandboxes: SandboxParts, team: Team, sandbox: SandboxView, path: str
) -> None:
    for attempt in (
        sandboxes.files.write(team.editor, sandbox.id, path, b"pwned", 0),
        sandboxes.files.read(team.editor, sandbox.id, path),
        sandboxes.files.delete(team.editor, sandbox.id, path, True),
        sandboxes.files.list(team.editor, sandbox.id, path, False, page_of(10)),
    ):
        with pytest.raises(InvalidArgument) as failure:
            await attempt
        assert [v.field for v in failure.value.violations] == ["path"]


async def test_symlinks_leading_out_are_invalid_and_inside_are_followed(
    sandboxes: SandboxParts, team: Team, sandbox: SandboxView
) -> None:
    await shell(
        sandboxes,
        team.editor,
        sandbox.id,
        "mkdir -p real && echo inside > real/f.txt"
        " && ln -s /etc etc && ln -s /etc/passwd pw && ln -s real alias && ln -s /tmp tmp",
    )
    for path in ("etc/passwd", "pw", "etc", "tmp/x", "tmp"):
        with pytest.raises(InvalidArgument) as failure:
            await sandboxes.files.read(team.editor, sandbox.id, path)
        assert "leads out of /workspace" in failure.value.violations[0].description
        with pytest.raises(InvalidArgument):
            await sandboxes.files.write(team.editor, sandbox.id, path, b"pwned", 0)
    with pytest.raises(InvalidArgument):
        await sandboxes.files.list(team.editor, sandbox.id, "etc", False, page_of(10))
    # A link that stays inside is fine.
    _, content = await sandboxes.files.read(team.editor, sandbox.id, "alias/f.txt")
    assert content == b"inside\n"
    await sandboxes.files.write(team.editor, sandbox.id, "alias/g.txt", b"via link", 0)
    _, content = await sandboxes.files.read(team.editor, sandbox.id, "real/g.txt")
    assert content == b"via link"
    # Removing a link removes the link, not what it points to.
    await sandboxes.files.delete(team.editor, sandbox.id, "etc", False)
    still = await shell(sandboxes, team.editor, sandbox.id, "test -f /etc/passwd && echo yes")
    assert still.stdout == b"yes\n"


async def test_size_limits(sandboxes: SandboxParts, team: Team, sandbox: SandboxView) -> None:
    limit = sandboxes.settings.sandbox_max_file_bytes
    with pytest.raises(InvalidArgument) as failure:
        await sandboxes.files.write(team.editor, sandbox.id, "big", b"x" * (limit + 1), 0)
    assert [v.field for v in failure.value.violations] == ["content"]
    await shell(sandboxes, team.editor, sandbox.id, f"head -c {limit + 1} /dev/zero > big")
    with pytest.raises(FailedPrecondition) as refused:
        await sandboxes.files.read(team.editor, sandbox.id, "big")
    assert refused.value.reason == "FILE_TOO_LARGE"


async def test_writing_beyond_the_disk_cap_is_refused(sandboxes: SandboxParts, team: Team) -> None:
    mib = 1024 * 1024
    small = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest(disk_bytes=2 * mib)
    )
    await sandboxes.files.write(team.editor, small.id, "one", b"x" * mib, 0)
    from server.core.errors import ResourceExhausted

    with pytest.raises(ResourceExhausted) as full:
        await sandboxes.files.write(team.editor, small.id, "two", b"x" * (2 * mib), 0)
    assert full.value.reason == "SANDBOX_DISK_FULL"
    ran = await shell(sandboxes, team.editor, small.id, "head -c 3000000 /dev/zero > three")
    assert b"No space left on device" in ran.stderr


async def test_file_requests_are_validated(
    sandboxes: SandboxParts, team: Team, sandbox: SandboxView
) -> None:
    with pytest.raises(InvalidArgument) as failure:
        await sandboxes.files.write(team.editor, sandbox.id, "", b"", 0o70000)
    assert {v.field for v in failure.value.violations} == {"path", "mode"}
    with pytest.raises(InvalidArgument):
        await sandboxes.files.delete(team.editor, sandbox.id, "/workspace", True)
    await sandboxes.files.write(team.editor, sandbox.id, "plain", b"", 0)
    with pytest.raises(InvalidArgument) as failure:
        await sandboxes.files.write(team.editor, sandbox.id, "plain/child", b"", 0)
    assert "not a directory" in failure.value.violations[0].description
    await shell(sandboxes, team.editor, sandbox.id, "mkdir adir")
    with pytest.raises(InvalidArgument):
        await sandboxes.files.write(team.editor, sandbox.id, "adir", b"", 0)
    with pytest.raises(InvalidArgument):
        await sandboxes.files.read(team.editor, sandbox.id, "adir")
