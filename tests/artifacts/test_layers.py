"""The artifacts package's layers: only the servicer side sees protos, and what the domain
hands the servicer is its own values (views.py), never ORM rows."""

from __future__ import annotations

import ast
from pathlib import Path

import server.artifacts

PACKAGE = Path(server.artifacts.__file__).parent
# build_rpcs.py: the build and preview RPCs, a part of the servicer (service.py).
PROTO_SIDE = {"convert.py", "service.py", "module.py", "build_rpcs.py"}
# The modules whose public calls the servicer (or another service, through a hook) uses.
SERVICE_FACING = {
    "manager.py",
    "content.py",
    "files.py",
    "generation.py",
    "chat.py",
    "listener.py",
    "builds.py",
    "previews.py",
    "sites.py",
}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_servicer_side_imports_generated_protos() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imported(_tree(path)) if name.split(".")[0] in ("forge", "google")
        )
        for path in PACKAGE.rglob("*.py")
        if path.name not in PROTO_SIDE
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_service_facing_calls_return_views_not_rows() -> None:
    leaks: list[str] = []
    for name in sorted(SERVICE_FACING):
        for node in ast.walk(_tree(PACKAGE / name)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("_") or node.returns is None:
                continue
            returned = ast.unparse(node.returns)
            if "Row" in returned or "_pb2" in returned:
                leaks.append(f"{name}: {node.name} -> {returned}")
    assert leaks == []
