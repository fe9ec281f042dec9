"""Connecting to one Docker engine: a unix socket, TCP with mutual TLS, or (with no address)
docker_host, DOCKER_HOST or the local socket.

The Docker SDK (with requests and urllib3: about 4.1 MiB resident; without the character
detector requests would load, server/core/lean_imports.py) loads with the first connection,
not with this module: a server connects as it starts, but a supervisor of worker processes
(FORGE_WORKERS) never does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from server.config import Settings
from server.config_docker import TLS_FILES, DockerHostAddress
from server.core import lean_imports
from server.sandbox.backend import BackendUnavailable

if TYPE_CHECKING:
    import docker.tls

    from server.sandbox.docker_backend import DockerBackend

API_TIMEOUT_SECONDS = 60
# Short while connecting: an unreachable engine must not hold up the server's start for long.
CONNECT_TIMEOUT_SECONDS = 5


def engine_addresses(settings: Settings) -> list[DockerHostAddress | None]:
    """The engines sandboxes run on, in order (the first one adopts sandboxes recorded before
    hosts were); None is the default engine."""
    return list(settings.docker_hosts) or [None]


async def connect_docker(settings: Settings, address: DockerHostAddress | None) -> DockerBackend:
    """Connects (in a thread) and checks the engine answers; BackendUnavailable if not."""
    lean_imports.load_docker_sdk()
    from docker.constants import MINIMUM_DOCKER_API_VERSION

    import docker
    from server.sandbox.docker_backend import DockerBackend

    pool = settings.sandbox_docker_threads + settings.sandbox_max_concurrent_execs

    def make() -> docker.APIClient:
        if address is not None:
            tls_dir = settings.tls_dir_of(address)
            api = docker.APIClient(
                base_url=address.url,
                timeout=CONNECT_TIMEOUT_SECONDS,
                max_pool_size=pool,
                version=MINIMUM_DOCKER_API_VERSION,
                tls=_tls_config(tls_dir) if tls_dir is not None else False,
            )
            # requests lets REQUESTS_CA_BUNDLE override a session's CA (psf/requests#3829):
            # the engine's own CA must win, so the environment is not consulted; then the
            # API version is negotiated as version="auto" would have done before that.
            api.trust_env = False
            api._version = str(api.version(api_version=False)["ApiVersion"])  # type: ignore[attr-defined]
        elif settings.docker_host:
            api = docker.APIClient(
                base_url=settings.docker_host,
                timeout=CONNECT_TIMEOUT_SECONDS,
                max_pool_size=pool,
                version="auto",
            )
        else:
            api = docker.from_env(timeout=CONNECT_TIMEOUT_SECONDS, max_pool_size=pool).api
        try:
            api.ping()
        except BaseException:
            api.close()
            raise
        api.timeout = API_TIMEOUT_SECONDS
        return api

    try:
        api = await asyncio.to_thread(make)
    except Exception as error:
        raise BackendUnavailable(f"cannot reach the Docker engine: {error}") from error
    return DockerBackend(
        api,
        api_threads=settings.sandbox_docker_threads,
        exec_threads=settings.sandbox_max_concurrent_execs,
    )


def _tls_config(directory: Path) -> docker.tls.TLSConfig:
    """Mutual TLS with the engine, from Docker's file names in `directory`."""
    import docker.tls

    ca, cert, key = (directory / name for name in TLS_FILES)
    return docker.tls.TLSConfig(client_cert=(str(cert), str(key)), ca_cert=str(ca), verify=True)
