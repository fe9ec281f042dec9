"""A second Docker engine on this machine, started by the tests: its own data root, exec
root, unix socket and a TCP port with mutual TLS (certificates the tests make), no bridge
or iptables (sandboxes have no network anyway), and the sandbox images copied in from the
main engine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
from tests.support.certs import CertificateAuthority
from tests.support.waiting import eventually


@dataclass
class SecondEngine:
    root: Path
    port: int
    tls_dir: Path
    """ca.pem, cert.pem and key.pem of a client the engine trusts (Docker's names)."""
    server_tls: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def unix_url(self) -> str:
        return f"unix://{self.root}/docker.sock"

    @property
    def tcp_url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.unix_url)

    async def start(self) -> None:
        """Starts the engine (again) and waits until it answers."""
        process = await asyncio.to_thread(_launch, self)
        self.process = process
        log = self.root / "dockerd.log"

        async def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"dockerd exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(docker.errors.DockerException):
                await asyncio.to_thread(self.client().ping)
                return True
            return False

        await eventually(answers, timeout=60)

    def kill(self) -> None:
        """The engine dies at once (a crash, or a host cut off): its containers keep
        running unseen, and nothing reports their end."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """Stops the engine as an operator would (its containers stop with it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def main_engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_tls(directory: Path) -> tuple[Path, Path]:
    """Client files in `directory`, server files in its 'server' subdirectory."""
    ca = CertificateAuthority("Forge Test Docker CA")
    server_dir = directory / "server"
    server_dir.mkdir(parents=True)
    server = ca.server("docker.test")
    client = ca.issue("forge-server")
    for target, issued in ((server_dir, server), (directory, client)):
        (target / "ca.pem").write_bytes(ca.cert)
        (target / "cert.pem").write_bytes(issued.cert)
        (target / "key.pem").write_bytes(issued.key)
    return directory, server_dir


def _launch(engine: SecondEngine) -> subprocess.Popen[bytes]:
    root, tls = engine.root, engine.server_tls
    with (root / "dockerd.log").open("ab") as log:
        return subprocess.Popen(
            [
                "dockerd",
                f"--data-root={root}/data",
                f"--exec-root={root}/exec",
                f"--pidfile={root}/docker.pid",
                f"--host={engine.unix_url}",
                f"--host={engine.tcp_url}",
                "--tlsverify",
                f"--tlscacert={tls}/ca.pem",
                f"--tlscert={tls}/cert.pem",
                f"--tlskey={tls}/key.pem",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                f"--cgroup-parent=forge-test-{root.name}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def start_second_engine(images: list[str]) -> SecondEngine:
    # Short paths: containerd's sockets live under the exec root (unix paths < 108 bytes).
    root = Path(tempfile.mkdtemp(prefix="fd2-", dir="/tmp"))
    tls_dir, server_tls = _write_tls(root / "tls")
    engine = SecondEngine(root, _free_port(), tls_dir, server_tls)
    try:
        await engine.start()
        for image in images:
            await asyncio.to_thread(_copy_image, image, engine.unix_url)
    except BaseException:
        remove_second_engine(engine)
        raise
    return engine


def _copy_image(image: str, target_url: str) -> None:
    host = target_url.removeprefix("unix://")
    subprocess.run(  # noqa: S602
        f"docker save {image} | docker -H unix://{host} load -q",
        shell=True,
        check=True,
        capture_output=True,
    )


def remove_second_engine(engine: SecondEngine) -> None:
    """Stops the engine (removing what runs on it) and its files."""
    with contextlib.suppress(docker.errors.DockerException):
        client = engine.client()
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.close()
    engine.stop()
    # dockerd leaves its data root's overlay mount behind.
    for mount in _mounts_under(engine.root):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    shutil.rmtree(engine.root, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    """Mount points below `root`, deepest first."""
    prefix = f"{root}/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


async def close_second_engine(engine: SecondEngine) -> None:
    """Removes everything; an engine that was killed is started again first, so that it
    stops the containers it left running."""
    if engine.process is None or engine.process.poll() is not None:
        with contextlib.suppress(Exception):
            await engine.start()
    await asyncio.to_thread(remove_second_engine, engine)
