"""The runtimes sandboxes are made from, built from Settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from server.config import Settings
from server.sandbox.limits import Limits


@dataclass(frozen=True)
class Runtime:
    name: str
    display_name: str
    image: str
    # RunCode languages this runtime serves (lower case).
    languages: tuple[str, ...]
    # Where RunCode puts the source, and how it runs it.
    source_file: str
    run_argv: tuple[str, ...]
    default_limits: Limits
    max_limits: Limits
    pool_size: int


def default_limits(settings: Settings) -> Limits:
    return Limits(
        memory_bytes=settings.sandbox_memory_bytes,
        cpu_millis=settings.sandbox_cpu_millis,
        pids=settings.sandbox_pids,
        disk_bytes=settings.sandbox_disk_bytes,
        tmp_bytes=settings.sandbox_tmp_bytes,
        exec_timeout=timedelta(seconds=settings.sandbox_exec_timeout_seconds),
        idle_timeout=timedelta(seconds=settings.sandbox_idle_timeout_seconds),
        output_limit_bytes=settings.sandbox_output_limit_bytes,
    )


def max_limits(settings: Settings) -> Limits:
    default = default_limits(settings)
    return Limits(
        memory_bytes=max(settings.sandbox_max_memory_bytes, default.memory_bytes),
        cpu_millis=max(settings.sandbox_max_cpu_millis, default.cpu_millis),
        pids=max(settings.sandbox_max_pids, default.pids),
        disk_bytes=max(settings.sandbox_max_disk_bytes, default.disk_bytes),
        tmp_bytes=max(settings.sandbox_max_tmp_bytes, default.tmp_bytes),
        exec_timeout=max(
            timedelta(seconds=settings.sandbox_max_exec_timeout_seconds), default.exec_timeout
        ),
        idle_timeout=max(
            timedelta(seconds=settings.sandbox_max_idle_timeout_seconds), default.idle_timeout
        ),
        output_limit_bytes=max(settings.sandbox_max_output_limit_bytes, default.output_limit_bytes),
    )


class Runtimes:
    """The configured runtimes, by name and by RunCode language."""

    def __init__(self, runtimes: Iterable[Runtime]) -> None:
        self._by_name = {runtime.name: runtime for runtime in runtimes}
        self._by_language = {
            language: runtime
            for runtime in self._by_name.values()
            for language in runtime.languages
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtimes:
        default = default_limits(settings)
        maximum = max_limits(settings)

        def pool(name: str) -> int:
            return max(0, settings.sandbox_pool_sizes.get(name, settings.sandbox_pool_size))

        return cls(
            [
                Runtime(
                    name="python",
                    display_name="Python 3.11",
                    image=settings.sandbox_python_image,
                    languages=("python", "python3", "py"),
                    source_file="main.py",
                    run_argv=("python3", "/workspace/main.py"),
                    default_limits=default,
                    max_limits=maximum,
                    pool_size=pool("python"),
                ),
                Runtime(
                    name="node",
                    display_name="Node.js 18",
                    image=settings.sandbox_node_image,
                    languages=("javascript", "js", "node", "nodejs"),
                    source_file="main.js",
                    run_argv=("node", "/workspace/main.js"),
                    default_limits=default,
                    max_limits=maximum,
                    pool_size=pool("node"),
                ),
            ]
        )

    def all(self) -> list[Runtime]:
        return sorted(self._by_name.values(), key=lambda runtime: runtime.name)

    def get(self, name: str) -> Runtime | None:
        return self._by_name.get(name)

    def for_language(self, language: str) -> Runtime | None:
        return self._by_language.get(language.strip().lower())

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def languages(self) -> list[str]:
        return sorted(self._by_language)
