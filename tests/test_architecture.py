"""The shape of the house (docs/architecture.md), checked on the source of server/."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "server"
SERVICE_PACKAGES = frozenset({"auth", "projects", "agents", "sandbox", "artifacts", "deployments"})
MAX_LINES = 450

ALLOWED_CROSS_SERVICE_IMPORTS: frozenset[tuple[str, str]] = frozenset()
"""(importing module, imported module) pairs between two service packages that are allowed:
none. Services reach each other through server/core/hooks.py."""

PROTO_MODULES = frozenset({"service.py", "convert.py", "module.py", "hooks.py"})
"""The only modules of a service package that may import generated code (`forge.…`):
the servicer (and its parts, `*_rpcs.py` mixins), the proto <-> domain conversion, the
wiring, and hook adapters that hand contract messages to another service."""


def _may_import_generated(path: Path) -> bool:
    return path.name in PROTO_MODULES or path.name.endswith("_rpcs.py")


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SERVER.rglob("*.py")):
        parts = path.relative_to(SERVER.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _imports(path: Path, module: str) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _layer(module: str) -> str:
    """'server.agents.chat' -> 'agents'; 'server.app' -> 'app'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_service_package_imports_another() -> None:
    crossings = set()
    for module, path in _modules():
        own = _layer(module)
        for imported in _imports(path, module):
            if not imported.startswith("server."):
                continue
            other = _layer(imported)
            if own in SERVICE_PACKAGES and other in SERVICE_PACKAGES and other != own:
                crossings.add((module, ".".join(imported.split(".")[:3])))
    assert crossings <= ALLOWED_CROSS_SERVICE_IMPORTS, sorted(
        crossings - ALLOWED_CROSS_SERVICE_IMPORTS
    )


def test_lower_layers_import_no_service() -> None:
    """core, db, llm and config sit below the services and never reach up into them."""
    upward = sorted(
        (module, imported)
        for module, path in _modules()
        if _layer(module) in {"core", "db", "llm", "config"}
        for imported in _imports(path, module)
        if imported.startswith("server.")
        and _layer(imported) in SERVICE_PACKAGES | {"app", "services"}
    )
    assert upward == []


def test_domain_modules_do_not_import_generated_code() -> None:
    offenders = sorted(
        module
        for module, path in _modules()
        if _layer(module) in SERVICE_PACKAGES | {"core", "db", "llm"}
        and not _may_import_generated(path)
        and any(imported.startswith("forge.") for imported in _imports(path, module))
    )
    assert offenders == []


def test_no_file_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(SERVER.parent)): len(path.read_text().splitlines())
        for _, path in _modules()
    }
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}


def test_the_checks_see_the_imports() -> None:
    """The walk finds a known import, so the tests above cannot pass by seeing nothing."""
    found = dict(_modules())
    assert "server.core.hooks" in set(_imports(found["server.core.module"], "server.core.module"))
    assert len(found) > 100
