"""The sandbox backend on a Docker engine, through the (blocking) `docker` SDK.

Every SDK call runs in a bounded thread pool; each streaming execution has a reader thread
of its own from a second pool, so long executions never starve short API calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import docker.errors
import requests.exceptions
from docker.types import DriverConfig, LogConfig, Mount

import docker
from server.sandbox import archive, docker_archive, docker_events
from server.sandbox.backend import (
    DEFAULT_ROOT_DIR,
    LABEL_MANAGED,
    LABEL_NAMESPACE,
    SANDBOX_GID,
    SANDBOX_UID,
    SANDBOX_USER,
    WORKSPACE,
    BackendError,
    BackendUnavailable,
    ContainerGone,
    ContainerInfo,
    ContainerNotRunning,
    ContainerPaused,
    ContainerSpec,
    ContainerStatus,
    EngineDescription,
    ExecSpec,
    HelperResult,
    NewFile,
    NoSpace,
    PathStat,
    ResourceLimit,
)
from server.sandbox.docker_exec import DockerExecProcess, wrap
from server.sandbox.docker_run import PauseHolds, StartGate, run_helper
from server.sandbox.seccomp import seccomp_option

log = logging.getLogger(__name__)

T = TypeVar("T")

# The container's own /tmp tmpfs (also its HOME: the image's home is on the read-only root).
_CONTAINER_TMP = "/tmp"  # noqa: S108
_EXIT_POLL_SECONDS = 3.0
_STARTED_SECONDS = 10.0
# cgroup v2 first, then v1: both have an `oom_kill N` line.
_OOM_COUNTER = (
    "cat /sys/fs/cgroup/memory.events 2>/dev/null || cat /sys/fs/cgroup/memory/memory.oom_control"
)


def _translate(error: Exception) -> BackendError:
    if isinstance(error, BackendError):
        return error
    if isinstance(error, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return BackendUnavailable("the Docker engine does not answer")
    if isinstance(error, docker.errors.NotFound):
        return ContainerGone(str(error.explanation or "no such container"))
    if isinstance(error, docker.errors.APIError):
        text = str(error.explanation or error)
        lowered = text.lower()
        if "is paused" in lowered:
            return ContainerPaused(text)
        if "is not running" in lowered or "is restarting" in lowered:
            return ContainerNotRunning(text)
        if "no space left" in lowered:
            return NoSpace(text)
        if "resource temporarily unavailable" in lowered:
            return ResourceLimit(text)
        return BackendError(text)
    if isinstance(error, docker.errors.DockerException):
        return BackendUnavailable(str(error))
    return BackendError(f"{type(error).__name__}: {error}")


class DockerBackend:
    """Implements backend.SandboxBackend."""

    def __init__(self, api: docker.APIClient, *, api_threads: int, exec_threads: int) -> None:
        self._api = api
        self._calls = concurrent.futures.ThreadPoolExecutor(
            max_workers=api_threads, thread_name_prefix="docker-api"
        )
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=exec_threads, thread_name_prefix="docker-exec"
        )
        self._pause_holds = PauseHolds()
        self._starts = StartGate()

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()

        def guarded() -> T:
            try:
                return function(*args)
            except Exception as error:
                raise _translate(error) from error

        return await loop.run_in_executor(self._calls, guarded)

    async def close(self) -> None:
        self._readers.shutdown(wait=False, cancel_futures=True)
        self._calls.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._api.close)

    # --- containers ----------------------------------------------------------------------

    async def ping(self) -> None:
        await self._call(self._api.ping)

    async def describe(self) -> EngineDescription:
        info = await self._call(self._api.info)
        engine_id = str(info.get("ID") or "") if isinstance(info, dict) else ""
        if not engine_id:
            raise BackendError("the Docker engine did not say its ID")
        return EngineDescription(
            engine_id=engine_id,
            memory_bytes=int(info.get("MemTotal") or 0),
            cpu_millis=int(info.get("NCPU") or 0) * 1000,
            root_dir=str(info.get("DockerRootDir") or DEFAULT_ROOT_DIR),
        )

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        return await self._call(self._create, spec)

    def _create(self, spec: ContainerSpec) -> ContainerInfo:
        api = self._api
        limits = spec.limits
        workspace = Mount(
            target=WORKSPACE,
            source=None,
            type="volume",
            driver_config=DriverConfig(
                "local",
                {
                    "type": "tmpfs",
                    "device": "tmpfs",
                    "o": f"size={limits.disk_bytes},uid={SANDBOX_UID},gid={SANDBOX_GID},"
                    "mode=0755,nosuid,nodev",
                },
            ),
        )
        host_config = api.create_host_config(
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            nano_cpus=limits.cpu_millis * 1_000_000,
            pids_limit=limits.pids,
            network_mode="none",
            read_only=True,
            tmpfs={_CONTAINER_TMP: f"rw,nosuid,nodev,noexec,size={limits.tmp_bytes},mode=1777"},
            mounts=[workspace],
            cap_drop=["ALL"],
            security_opt=["no-new-privileges", seccomp_option()],
            log_config=LogConfig(type="none"),
        )
        container = api.create_container(
            image=spec.image,
            name=spec.name,
            user=SANDBOX_USER,
            working_dir=WORKSPACE,
            hostname="sandbox",
            environment={"HOME": _CONTAINER_TMP, **spec.env},
            labels=dict(spec.labels),
            network_disabled=True,
            host_config=host_config,
        )
        container_id = str(container["Id"])
        try:
            api.start(container_id)
        except Exception:
            self._remove_quietly(container_id)
            raise
        return ContainerInfo(container_id, spec.name, dict(spec.labels), ContainerStatus.RUNNING)

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self._api.remove_container(container_id, v=True, force=True)
        except Exception as error:  # best effort: the reaper retries
            log.warning("could not remove a container", extra={"error": str(error)})

    async def destroy(self, container_id: str) -> None:
        await self._call(self._destroy, container_id)

    def _destroy(self, container_id: str) -> None:
        try:
            self._api.remove_container(container_id, v=True, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as error:
            if "already in progress" in str(error.explanation or ""):
                return
            raise

    async def pause(self, container_id: str) -> None:
        async with self._starts.pausing(container_id):
            await self._call(self._pause, container_id)

    def _pause(self, container_id: str) -> None:
        try:
            self._api.pause(container_id)
        except docker.errors.APIError as error:
            if "already paused" not in str(error.explanation or "").lower():
                raise

    async def resume(self, container_id: str) -> None:
        async with self._pause_holds.resuming(container_id):
            await self._call(self._resume, container_id)

    def holding_pause(self, container_id: str) -> AbstractAsyncContextManager[bool]:
        return self._pause_holds.hold(container_id, lambda: self._call(self._paused, container_id))

    def _paused(self, container_id: str) -> bool:
        state = self._api.inspect_container(container_id).get("State") or {}
        return bool(state.get("Paused"))

    def _resume(self, container_id: str) -> None:
        try:
            self._api.unpause(container_id)
        except docker.errors.APIError as error:
            if "is not paused" not in str(error.explanation or "").lower():
                raise

    async def list_managed(self, namespace: str) -> list[ContainerInfo]:
        filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_NAMESPACE}={namespace}"]}
        rows = await self._call(partial(self._api.containers, all=True, filters=filters))
        return [
            ContainerInfo(
                id=str(row["Id"]),
                name=str((row.get("Names") or ["/"])[0]).lstrip("/"),
                labels=dict(row.get("Labels") or {}),
                status=ContainerStatus.parse(str(row.get("State", ""))),
                created=datetime.fromtimestamp(row["Created"], UTC) if row.get("Created") else None,
            )
            for row in rows
        ]

    def container_ends(self, namespace: str) -> AsyncGenerator[str, None]:
        return docker_events.container_ends(self._api, namespace)

    async def is_alive(self, container_id: str) -> bool:
        return await self._call(self._is_alive, container_id)

    def _is_alive(self, container_id: str) -> bool:
        try:
            state = self._api.inspect_container(container_id).get("State") or {}
        except docker.errors.NotFound:
            return False
        return str(state.get("Status", "")) in (ContainerStatus.RUNNING.value, "paused")

    # --- executions ----------------------------------------------------------------------

    async def exec(self, container_id: str, spec: ExecSpec) -> DockerExecProcess:
        loop = asyncio.get_running_loop()
        with_stdin = bool(spec.stdin)
        async with self._starts.starting(container_id):
            exec_id, sock = await self._call(self._start_exec, container_id, spec, with_stdin)
            process = DockerExecProcess(
                loop,
                sock,
                spec.output_limit_bytes,
                lambda: self._wait_exit(exec_id),
                self._calls,
            )
            process.start(self._readers, spec.stdin if with_stdin else None)
            # Set up once it runs its command (the wrapper has told its pid by then).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.process_group), _STARTED_SECONDS)
        return process

    def _start_exec(self, container_id: str, spec: ExecSpec, with_stdin: bool) -> tuple[str, Any]:
        created = self._api.exec_create(
            container_id,
            wrap(list(spec.argv)),
            stdin=with_stdin,
            user=SANDBOX_USER,
            environment=dict(spec.env),
            workdir=spec.working_dir,
        )
        exec_id = str(created["Id"])
        sock = self._api.exec_start(exec_id, socket=True)
        return exec_id, sock

    def _wait_exit(self, exec_id: str) -> int | None:
        """The exit code of a finished exec; polls briefly because the engine can report the
        streams closed a moment before it records the exit."""
        deadline = time.monotonic() + _EXIT_POLL_SECONDS
        delay = 0.002
        while True:
            try:
                info = self._api.exec_inspect(exec_id)
            except docker.errors.NotFound:
                return None
            except Exception as error:
                raise _translate(error) from error
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            if time.monotonic() > deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def run(self, container_id: str, argv: Sequence[str]) -> tuple[int, bytes]:
        async with self._starts.starting(container_id):
            return await self._call(self._run, container_id, list(argv))

    def _run(self, container_id: str, argv: list[str]) -> tuple[int, bytes]:
        created = self._api.exec_create(container_id, argv, user=SANDBOX_USER)
        exec_id = str(created["Id"])
        output = self._api.exec_start(exec_id)
        code = self._wait_exit(exec_id)
        return (code if code is not None else -1), bytes(output or b"")

    async def run_helper(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
        max_output: int,
        timeout: float,
    ) -> HelperResult:
        call = partial(
            run_helper,
            self._api,
            container_id,
            list(argv),
            user=SANDBOX_USER,
            stdin=stdin,
            env=dict(env or {}),
            max_output=max_output,
            wait_exit=self._wait_exit,
            timeout=timeout,
        )
        async with self._starts.starting(container_id):
            return await self._call(call)

    async def kill_process_group(self, container_id: str, process_group: int) -> None:
        # `kill` is a shell builtin: killing needs one free process slot, not two.
        code, output = await self.run(
            container_id, ["/bin/sh", "-c", f"kill -KILL -{process_group}"]
        )
        if code != 0 and b"No such process" not in output:
            raise ResourceLimit(output.decode(errors="replace").strip() or f"kill exited {code}")

    async def oom_kill_count(self, container_id: str) -> int | None:
        code, output = await self.run(container_id, ["/bin/sh", "-c", _OOM_COUNTER])
        if code != 0:
            return None
        for line in output.decode(errors="replace").splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    # --- files ---------------------------------------------------------------------------

    async def stat(self, container_id: str, path: str) -> PathStat | None:
        return await self._call(docker_archive.stat_path, self._api, container_id, path)

    async def write_file(
        self, container_id: str, directory: str, relative_path: str, file: NewFile
    ) -> None:
        data = archive.file_archive(relative_path, file)
        await self._call(self._api.put_archive, container_id, directory, data)

    async def read_file(self, container_id: str, path: str, max_bytes: int) -> bytes:
        return await self._call(self._read_file, container_id, path, max_bytes)

    def _read_file(self, container_id: str, path: str, max_bytes: int) -> bytes:
        chunks, _ = self._api.get_archive(container_id, path, chunk_size=None)
        return archive.single_file(docker_archive.closing(chunks), max_bytes)

    async def list_tree(self, container_id: str, directory: str) -> list[PathStat]:
        return await self._call(self._list_tree, container_id, directory)

    def _list_tree(self, container_id: str, directory: str) -> list[PathStat]:
        chunks, _ = self._api.get_archive(container_id, directory, chunk_size=None)
        return archive.list_entries(docker_archive.closing(chunks), directory)
