"""A build's source files: checked (paths inside the project, counts and sizes within the
limits, the entry among them) and packed into the one archive that enters the sandbox."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping

from server.builds.limits import BuildLimits
from server.core.errors import Violations

MAX_PATH_CHARS = 512
_SHOWN_PATH_CHARS = 80


def check_sources(files: Mapping[str, bytes], entry: str | None, limits: BuildLimits) -> None:
    """INVALID_ARGUMENT naming every problem: no files, too many or too large, a path that is
    not a plain relative one (no "..", no leading "/", no backslash), a path that is both a
    file and a directory, or an entry that is not one of the files."""
    violations = Violations()
    violations.check(bool(files), "files", "is required: at least one source file")
    if len(files) > limits.max_input_files:
        violations.add("files", f"must be at most {limits.max_input_files} files")
    total = sum(len(content) for content in files.values())
    if total > limits.max_input_bytes:
        violations.add("files", f"must be at most {limits.max_input_bytes} bytes in all")
    for path in sorted(files):
        problem = _path_problem(path)
        if problem:
            violations.add(f"files[{_shown(path)}]", problem)
    directories = {prefix for path in files for prefix in _parents(path)}
    for path in sorted(set(files) & directories):
        violations.add(f"files[{_shown(path)}]", "is both a file and a directory")
    if entry is not None and entry not in files:
        violations.add("entry", f"must be one of the files (got {_shown(entry)!r})")
    violations.raise_if_any()


def _path_problem(path: str) -> str:
    if not path:
        return "the path is empty"
    if len(path) > MAX_PATH_CHARS:
        return f"the path must be at most {MAX_PATH_CHARS} characters"
    if path.startswith("/"):
        return "the path must be relative to the project root"
    if "\\" in path or any(ord(char) < 0x20 or char == "\x7f" for char in path):
        return "the path must not hold backslashes or control characters"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return 'the path must not hold empty, "." or ".." parts'
    return ""


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:index]) for index in range(1, len(parts))]


def _shown(path: str) -> str:
    return path if len(path) <= _SHOWN_PATH_CHARS else path[:_SHOWN_PATH_CHARS] + "…"


def pack(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed tar of the (checked) files, regular files only, mode 0644."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(files):
            content = files[path]
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
