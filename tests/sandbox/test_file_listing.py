"""ListFiles pages through big directories without reading all of them per page, in path
order, recursively too."""

from __future__ import annotations

import time
from collections.abc import Sequence

from server.sandbox.limits import LimitRequest
from server.sandbox.parts import SandboxParts
from server.sandbox.views import FileInfo
from tests.sandbox.support import Team, page_of, shell

FILES = 20_000


async def test_a_big_directory_pages_in_order(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    made = await shell(
        sandboxes,
        team.editor,
        sandbox.id,
        f"mkdir many && cd many && seq -f 'f%05g' {FILES} | xargs touch && echo made",
    )
    assert made.stdout == b"made\n", made.stderr
    expected = [f"/workspace/many/f{n:05d}" for n in range(1, FILES + 1)]

    started = time.perf_counter()
    first = await sandboxes.files.list(team.viewer, sandbox.id, "many", False, page_of(50))
    took = time.perf_counter() - started
    assert [entry.path for entry in first.items] == expected[:50]
    assert first.next_key == [expected[49]]
    second = await sandboxes.files.list(
        team.viewer, sandbox.id, "many", False, page_of(50, first.next_key)
    )
    assert [entry.path for entry in second.items] == expected[50:100]

    seen: list[str] = []
    key: Sequence[str] | None = None
    while True:
        page = await sandboxes.files.list(
            team.viewer, sandbox.id, "/workspace/many", False, page_of(2500, key)
        )
        seen.extend(entry.path for entry in page.items)
        if page.next_key is None:
            break
        key = page.next_key
    assert seen == expected
    print(f"first page of 50 out of {FILES}: {took * 1000:.0f} ms")


async def test_recursive_pages_follow_path_order(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(team.editor, team.project_id, "node", LimitRequest())
    await shell(
        sandboxes,
        team.editor,
        sandbox.id,
        "mkdir -p src/app src-old 10 9 && touch src/app/a src-old/b 10/x 9/y 'sp ace'"
        " && ln -s /etc src/etc",
    )
    everything = [
        "10",
        "10/x",
        "9",
        "9/y",
        "sp ace",
        "src",
        "src-old",
        "src-old/b",
        "src/app",
        "src/app/a",
        "src/etc",
    ]
    seen: list[FileInfo] = []
    key: Sequence[str] | None = None
    while True:
        page = await sandboxes.files.list(team.viewer, sandbox.id, "", True, page_of(3, key))
        seen.extend(page.items)
        if page.next_key is None:
            break
        key = page.next_key
    assert [entry.path for entry in seen] == [f"/workspace/{path}" for path in everything]
    kinds = {entry.path.removeprefix("/workspace/"): entry for entry in seen}
    assert kinds["src/etc"].is_symlink
    assert kinds["src"].is_dir
    assert not kinds["sp ace"].is_dir
    below = await sandboxes.files.list(team.viewer, sandbox.id, "src", True, page_of(10))
    assert [entry.path for entry in below.items] == [
        "/workspace/src/app",
        "/workspace/src/app/a",
        "/workspace/src/etc",
    ]


async def test_a_paused_sandbox_lists_and_writes_through_the_engine(
    sandboxes: SandboxParts, team: Team
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    for name in ("b", "a", "c"):
        await sandboxes.files.write(team.editor, sandbox.id, f"d/{name}", name.encode(), 0)
    await sandboxes.lifecycle.pause(team.editor, sandbox.id)
    first = await sandboxes.files.list(team.viewer, sandbox.id, "d", False, page_of(2))
    assert [entry.path for entry in first.items] == ["/workspace/d/a", "/workspace/d/b"]
    rest = await sandboxes.files.list(
        team.viewer, sandbox.id, "d", False, page_of(2, first.next_key)
    )
    assert [entry.path for entry in rest.items] == ["/workspace/d/c"]
    await sandboxes.files.write(team.editor, sandbox.id, "d/e", b"while paused", 0)
    await sandboxes.lifecycle.resume(team.editor, sandbox.id)
    _, content = await sandboxes.files.read(team.viewer, sandbox.id, "d/e")
    assert content == b"while paused"
