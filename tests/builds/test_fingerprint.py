"""A build's fingerprint, the key a stored output is found by again."""

from __future__ import annotations

from server.builds.fingerprint import fingerprint

IMAGE = "forge-sandbox-node:2"
FILES = {"index.tsx": b"render()", "App.tsx": b"export default 1"}


def test_the_same_sources_give_the_same_fingerprint_in_any_order() -> None:
    reordered = dict(reversed(list(FILES.items())))
    assert fingerprint(FILES, None, IMAGE) == fingerprint(reordered, None, IMAGE)


def test_any_change_that_changes_the_bundle_changes_it() -> None:
    seen = {
        fingerprint(FILES, None, IMAGE),
        fingerprint(FILES, "App.tsx", IMAGE),
        fingerprint(FILES, None, "forge-sandbox-node:3"),
        fingerprint({**FILES, "App.tsx": b"export default 2"}, None, IMAGE),
        fingerprint({"index.tsx": b"render()", "App.ts": b"export default 1"}, None, IMAGE),
        fingerprint({"index.tsxApp.tsx": b"render()export default 1"}, None, IMAGE),
    }
    assert len(seen) == 6
